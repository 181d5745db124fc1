"""Two replicas of the process engine start at the same moment and deploy the same definitions (seen in the chaos
campaign: the second one's insert hit the first one's document, and it exited at start-up)."""

from __future__ import annotations

import asyncio

from process_engine.repository import DefinitionRepository


async def test_two_replicas_storing_the_same_definition_at_once_both_succeed(mongo, namespace):
    database = mongo[f"{namespace}engine_start".replace(".", "_")]
    first, second = DefinitionRepository(database), DefinitionRepository(database)
    try:
        for round_ in range(5):
            doc = {"_id": f"hash-{round_}", "process_id": f"proces_{round_}", "files": []}
            created = await asyncio.gather(first.add(dict(doc)), second.add(dict(doc)))
            assert sorted(created) == [False, True]  # stored once, by one of them; the other found it there
            assert await database.definitions.count_documents({"_id": doc["_id"]}) == 1
    finally:
        await mongo.drop_database(database.name)
