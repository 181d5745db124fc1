"""The latest definition of a process is found by ``_id`` (``definition_versions``), not by a scan of the definitions.

FerretDB v1 decodes every document for a filter other than ``{_id: ...}``; a case start asked for the latest
definition by ``process_id``, which decoded every stored definition (the BPMN and DMN XML) for each case.
"""

from __future__ import annotations

from typing import Any

import pytest

from process_engine.repository import DefinitionRepository


@pytest.fixture
async def db(mongo, namespace):
    return mongo[f"{namespace}definition_versions".replace(".", "_")]


def definition(content_hash: str, process_id: str = "ips") -> dict[str, Any]:
    return {"_id": content_hash, "process_id": process_id, "files": [{"name": "p.bpmn", "xml": "<x/>" * 100}]}


async def test_latest_hash_follows_every_version_added(db):
    repo = DefinitionRepository(db)
    assert await repo.latest_hash("ips") is None
    assert await repo.add(definition("h1"))
    assert await repo.add(definition("anders", process_id="ander"))
    assert await repo.latest_hash("ips") == "h1"
    for n in range(2, 12):  # past v9: the versions compare as numbers, not as text
        assert await repo.add(definition(f"h{n}"))
    assert await repo.latest_hash("ips") == "h11"
    assert await repo.latest_hash("ander") == "anders"
    assert (await repo.latest("ips") or {})["_id"] == "h11"  # the scan agrees
    assert not await repo.add(definition("h3"))  # the same content again: no new version
    assert await repo.latest_hash("ips") == "h11"
    assert (await db["definition_versions"].find_one({"_id": "ips"}) or {})["v"]["v3"] == "h3"


async def test_definitions_stored_without_the_version_index_are_found_and_recorded(db):
    """Definitions from before ``definition_versions`` (or a crash between the two writes of ``add``)."""
    repo = DefinitionRepository(db)
    await db["definitions"].insert_many([{**definition("oud1"), "version": 1}, {**definition("oud2"), "version": 2}])
    assert await repo.latest_hash("ips") == "oud2"
    assert (await db["definition_versions"].find_one({"_id": "ips"}) or {})["v"] == {"v2": "oud2"}
    assert await repo.add(definition("nieuw"))
    assert await repo.latest_hash("ips") == "nieuw"

    # a crash after the insert and before the version was recorded: deploying the same content again records it
    await db["definitions"].insert_one({**definition("na-crash"), "version": 4})
    assert await repo.latest_hash("ips") == "nieuw"
    assert not await repo.add(definition("na-crash"))
    assert await repo.latest_hash("ips") == "na-crash"
