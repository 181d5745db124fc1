"""Conditional single-document updates are atomic on the server the tests run against.

FerretDB v1.24 on SQLite is not atomic here by itself (see deploy/ferretdb/proxy.go); these tests fail
without the write-serialising front and pass on MongoDB.
"""

from __future__ import annotations

import asyncio

import pytest
from pymongo import UpdateOne

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


async def test_one_command_of_revision_checked_updates_applies_exactly_the_current_ones(mongo, namespace):
    """The outbox relay clears many documents with one update command; only statements whose revision is
    current may apply, and the reply counts exactly those (FerretDB: checked per statement by the proxy)."""
    collection = mongo[f"{namespace}atomicity".replace(".", "_")]["batch"]
    await collection.insert_many([{"_id": f"doc-{i}", "revision": 1 if i % 3 else 2} for i in range(9)])
    result = await collection.bulk_write(
        [UpdateOne({"_id": f"doc-{i}", "revision": 1}, {"$set": {"cleared": True}, "$inc": {"revision": 1}})
         for i in range(9)] + [UpdateOne({"_id": "missing", "revision": 1}, {"$set": {"cleared": True}})],
        ordered=False)
    docs = {d["_id"]: d async for d in collection.find({})}
    assert result.matched_count == 6
    assert sorted(i for i, d in docs.items() if d.get("cleared")) == [f"doc-{i}" for i in range(9) if i % 3]
    assert all(d["revision"] == 2 for d in docs.values())  # stale ones untouched, current ones moved on once
    assert "missing" not in docs


async def test_concurrent_batches_of_revision_checked_updates_each_document_has_one_winner(mongo, namespace):
    collection = mongo[f"{namespace}atomicity".replace(".", "_")]["race"]
    await collection.insert_many([{"_id": f"doc-{i}", "revision": 1, "winner": None} for i in range(20)])

    async def batch(writer: int) -> int:
        result = await collection.bulk_write(
            [UpdateOne({"_id": f"doc-{i}", "revision": 1}, {"$set": {"winner": writer}, "$inc": {"revision": 1}})
             for i in range(20)], ordered=False)
        return result.matched_count

    matched = await asyncio.gather(*(batch(w) for w in range(8)))
    docs = [d async for d in collection.find({})]
    assert sum(matched) == 20
    assert all(d["revision"] == 2 and d["winner"] is not None for d in docs)


async def test_revision_check_sees_a_database_dropped_and_created_again(mongo, namespace):
    """Revision checks after a database was dropped and created again under the same name apply to the new one."""
    name = f"{namespace}recreated".replace(".", "_")
    store = DocumentStore(mongo[name], "zaken")
    first = await store.insert({"_id": "zaak-1", "versie": "oud"})
    await store.replace({**first, "versie": "oud-2"})  # the proxy has now read this database's file
    await mongo.drop_database(name)
    again = await store.insert({"_id": "zaak-1", "versie": "nieuw"})
    stored = await store.replace({**again, "versie": "nieuw-2"})  # revision 1 again: must match
    assert stored["revision"] == 2
    assert (await store.get("zaak-1"))["versie"] == "nieuw-2"
    with pytest.raises(ConcurrencyError):
        await store.replace({**again, "versie": "verouderd"})


async def test_a_document_named_twice_in_one_command_is_updated_once_per_matching_revision(mongo, namespace):
    collection = mongo[f"{namespace}atomicity".replace(".", "_")]["twice"]
    await collection.insert_one({"_id": "doc-1", "revision": 1, "writes": 0})
    result = await collection.bulk_write(
        [UpdateOne({"_id": "doc-1", "revision": 1}, {"$inc": {"revision": 1, "writes": 1}}) for _ in range(2)],
        ordered=True)
    doc = await collection.find_one({"_id": "doc-1"})
    assert result.matched_count == 1
    assert (doc["revision"], doc["writes"]) == (2, 1)
