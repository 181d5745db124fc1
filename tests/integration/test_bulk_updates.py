"""Update commands of several statements answer as MongoDB answers them, on the server the tests run against.

FerretDB v1.24 alone never answers an update command of 100 statements or more, and stops an unordered
command at its first failing statement with a reply PyMongo cannot read; the front in deploy/ferretdb
(update.go) sends such commands on one statement at a time. These tests pass on MongoDB as they do here.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

import bson
import pymongo.uri_parser
import pytest
from pymongo import AsyncMongoClient, UpdateOne
from pymongo.errors import BulkWriteError, OperationFailure


@pytest.fixture
async def collection(mongo, namespace):
    return mongo[f"{namespace}bulk".replace(".", "_")]["docs"]


async def _failing_bulk(collection, ordered: bool, shape: str) -> dict:
    """Four statements of which the second and the fourth fail ($inc on a string).

    ``batched``: every statement revision-checked and raising the revision, as the outbox relay writes (the
    front sends them to FerretDB as one command); ``mixed``: one filtered on _id alone and two that leave the
    revision (sent on one statement at a time).
    """
    await collection.insert_many([{"_id": f"d{i}", "revision": 1, "tekst": "geen getal"} for i in range(4)])
    if shape == "batched":
        requests = [UpdateOne({"_id": f"d{i}", "revision": 1},
                              {"$inc": {"revision": 1, **({"tekst": 1} if i % 2 else {})}}) for i in range(4)]
    else:
        requests = [
            UpdateOne({"_id": "d0", "revision": 1}, {"$inc": {"revision": 1}}),
            UpdateOne({"_id": "d1", "revision": 1}, {"$inc": {"tekst": 1}}),
            UpdateOne({"_id": "d2", "revision": 1}, {"$inc": {"revision": 1}}),
            UpdateOne({"_id": "d3"}, {"$inc": {"tekst": 1}}),
        ]
    with pytest.raises(BulkWriteError) as caught:
        await collection.bulk_write(requests, ordered=ordered)
    return caught.value.details


SHAPES = pytest.mark.parametrize("shape", ["batched", "mixed"])


@SHAPES
async def test_an_unordered_bulk_applies_every_statement_that_can_and_names_the_failing_ones(collection, shape):
    details = await _failing_bulk(collection, ordered=False, shape=shape)
    assert [error["index"] for error in details["writeErrors"]] == [1, 3]
    assert details["nMatched"] == 2 and details["nModified"] == 2
    revisions = {doc["_id"]: doc["revision"] async for doc in collection.find({})}
    assert revisions == {"d0": 2, "d1": 1, "d2": 2, "d3": 1}


@SHAPES
async def test_an_ordered_bulk_stops_at_its_first_failing_statement(collection, shape):
    details = await _failing_bulk(collection, ordered=True, shape=shape)
    assert [error["index"] for error in details["writeErrors"]] == [1]
    assert details["nMatched"] == 1
    revisions = {doc["_id"]: doc["revision"] async for doc in collection.find({})}
    assert revisions == {"d0": 2, "d1": 1, "d2": 1, "d3": 1}


async def test_a_failure_among_stale_statements_is_reported_at_its_own_index(collection):
    """Statements whose revision is stale are left out before the batch goes to FerretDB; the failing one is
    still reported at its index in the client's command, and the statements after it still apply."""
    await collection.insert_many([{"_id": f"d{i}", "revision": 1, "tekst": "geen getal"} for i in range(6)])
    requests = [UpdateOne({"_id": f"d{i}", "revision": 1 if i not in (0, 2) else 5},
                          {"$inc": {"revision": 1, **({"tekst": 1} if i == 3 else {})}}) for i in range(6)]
    with pytest.raises(BulkWriteError) as caught:
        await collection.bulk_write(requests, ordered=False)
    assert [error["index"] for error in caught.value.details["writeErrors"]] == [3]
    assert caught.value.details["nMatched"] == 3
    revisions = {doc["_id"]: doc["revision"] async for doc in collection.find({})}
    assert revisions == {"d0": 1, "d1": 2, "d2": 1, "d3": 1, "d4": 2, "d5": 2}


@pytest.mark.parametrize("checked", [True, False], ids=["revision-checked", "by-id"])
async def test_a_bulk_of_250_updates_is_answered(collection, checked):
    """Revision-checked: the front reads the 251 revisions, leaves out the stale statement and sends the rest
    on one at a time (too many for one command); by id: FerretDB checks each filter itself."""
    await collection.insert_many([{"_id": f"d{i}", "revision": 1} for i in range(251)])
    requests = [UpdateOne({"_id": f"d{i}", "revision": 1} if checked else {"_id": f"d{i}"},
                          {"$inc": {"revision": 1}}) for i in range(250)]
    requests.append(UpdateOne({"_id": "d250", "revision": 7}, {"$inc": {"revision": 1}}))  # stale: no match
    result = await collection.bulk_write(requests, ordered=False)
    assert result.matched_count == 250
    assert await collection.count_documents({"revision": 2}) == 250
    assert (await collection.find_one({"_id": "d250"}))["revision"] == 1


async def test_a_statement_that_fails_first_in_an_unordered_bulk_is_a_write_error_and_the_rest_apply(
        collection):
    """FerretDB answers an unknown query operator as a failed command (ok: 0); in a bulk that is one write error
    at its statement's index, as MongoDB reports it, and the other statements still apply."""
    await collection.insert_many([{"_id": f"d{i}", "v": 0} for i in range(3)])
    with pytest.raises(BulkWriteError) as caught:
        await collection.bulk_write([
            UpdateOne({"$onbekend": 1}, {"$set": {"v": 1}}),
            UpdateOne({"_id": "d1"}, {"$set": {"v": 1}}),
            UpdateOne({"_id": "d2"}, {"$set": {"v": 1}}),
        ], ordered=False)
    assert [error["index"] for error in caught.value.details["writeErrors"]] == [0]
    assert caught.value.details["nModified"] == 2
    assert {doc["_id"]: doc["v"] async for doc in collection.find({})} == {"d0": 0, "d1": 1, "d2": 1}


async def test_a_command_with_a_malformed_statement_fails_whole_and_applies_nothing(collection):
    """A statement whose update is not a document: the command fails (ok: 0) before anything is applied, also
    with more statements than FerretDB answers in one command."""
    await collection.insert_many([{"_id": f"d{i}", "v": 0} for i in range(150)])
    updates: list[dict[str, object]] = [{"q": {"_id": f"d{i}"}, "u": {"$set": {"v": 1}}} for i in range(150)]
    updates[75] = {"q": {"_id": "d75"}, "u": 5}
    with pytest.raises(OperationFailure) as caught:
        await asyncio.wait_for(collection.database.command(
            {"update": collection.name, "ordered": False, "updates": updates}), timeout=30)
    assert caught.value.code == 14  # TypeMismatch
    assert await collection.count_documents({"v": 1}) == 0


async def test_upserts_in_a_bulk_are_reported_at_their_own_index(collection):
    await collection.insert_one({"_id": "a", "v": 1})
    result = await collection.bulk_write([
        UpdateOne({"_id": "a"}, {"$set": {"v": 2}}),
        UpdateOne({"_id": "b"}, {"$set": {"v": 1}}, upsert=True),
        UpdateOne({"_id": "c"}, {"$set": {"v": 1}}, upsert=True),
    ], ordered=False)
    assert result.matched_count == 1 and result.upserted_ids == {1: "b", 2: "c"}


@pytest.mark.parametrize(("stored", "asked", "matches"), [
    (2.0, 2, True),   # a revision stored as a double equals the integer, as in MongoDB
    (2.5, 2, False),  # and is not truncated to it
    (2, 2.0, True),   # a double in the filter equals the stored integer
    (2, 2.5, False),
    ("2", 2, False),  # a string is never a number
])
async def test_a_revision_check_compares_numbers_as_mongodb_does(collection, stored, asked, matches):
    await collection.insert_many([{"_id": "x", "revision": stored}, {"_id": "y", "revision": 1}])
    result = await collection.bulk_write([
        UpdateOne({"_id": "x", "revision": asked}, {"$set": {"geraakt": True}}),
        UpdateOne({"_id": "y", "revision": 1}, {"$set": {"geraakt": True}}),
    ], ordered=False)
    assert result.matched_count == (2 if matches else 1)
    single = await collection.update_one({"_id": "x", "revision": asked}, {"$set": {"nogmaals": True}})
    assert single.matched_count == (1 if matches else 0)


async def test_a_malformed_update_message_costs_its_connection_only(infra, collection):
    """An update whose document sequence has no NUL after its identifier: the server drops or refuses that
    message, and keeps serving every other connection (the local front once panicked on it and stopped)."""
    await collection.insert_one({"_id": "blijft", "v": 1})
    body = bson.encode({"update": collection.name, "$db": collection.database.name})
    sequence = b"updates"  # the identifier's terminating NUL is missing
    payload = struct.pack("<I", 0) + b"\x00" + body + b"\x01" + struct.pack("<I", 4 + len(sequence)) + sequence
    message = struct.pack("<iiii", 16 + len(payload), 7, 0, 2013) + payload
    host, port = pymongo.uri_parser.parse_uri(infra.mongo_url)["nodelist"][0]
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(message)
        await writer.drain()
        with contextlib.suppress(ConnectionError):
            await asyncio.wait_for(reader.read(65536), timeout=10)  # an error reply, or the connection closed
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    fresh: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(infra.mongo_url, serverSelectionTimeoutMS=5000)
    try:
        again = fresh[collection.database.name][collection.name]
        assert (await again.find_one({"_id": "blijft"}))["v"] == 1
        assert (await again.update_one({"_id": "blijft"}, {"$set": {"v": 2}})).modified_count == 1
    finally:
        await fresh.close()
