"""Conditional single-document updates are atomic on the server the tests run against.

FerretDB v1.24 on SQLite is not atomic here by itself (see deploy/ferretdb/proxy.go); these tests fail
without the write-serialising front and pass on MongoDB.
"""

from __future__ import annotations

import asyncio

from servicekit.store import ConcurrencyError, DocumentStore


async def test_guarded_decrement_never_overcommits(mongo, namespace):
    collection = mongo[f"{namespace}atomicity".replace(".", "_")]["budget"]
    await collection.insert_one({"_id": "plafond", "available_cents": 10 * 800_000})

    async def reserve(i: int) -> int:
        result = await collection.update_one({"_id": "plafond", "available_cents": {"$gte": 800_000}},
                                             {"$inc": {"available_cents": -800_000}})
        return result.matched_count

    granted = sum(await asyncio.gather(*(reserve(i) for i in range(40))))
    doc = await collection.find_one({"_id": "plafond"})
    assert granted == 10
    assert doc["available_cents"] == 0


async def test_revision_checked_replace_has_exactly_one_winner(mongo, namespace):
    store = DocumentStore(mongo[f"{namespace}atomicity".replace(".", "_")], "aggregates")
    base = await store.insert({"_id": "zaak-1", "who": None})

    async def write(i: int) -> bool:
        try:
            await store.replace({**base, "who": i})
            return True
        except ConcurrencyError:
            return False

    winners = [ok for ok in await asyncio.gather(*(write(i) for i in range(20))) if ok]
    assert len(winners) == 1
    assert (await store.get("zaak-1"))["revision"] == 2
