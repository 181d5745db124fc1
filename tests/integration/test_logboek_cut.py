"""A logboek record whose write reached FerretDB but whose answer was cut off (issue 17.3's proxy, issue 12's
logboek): the record is written once, and the request it belongs to is not refused for it.

Before, the lost answer made the middleware answer 503 for a change that had already been made (and, had the
write really failed, that change went unrecorded). The write is now tried again with the same record id, so a
retry after a lost answer finds its own record instead of writing a second one.
"""

from __future__ import annotations

from pymongo import AsyncMongoClient

from servicekit.audit import Logboek, Verwerking
from servicekit.auth import Principal
from servicekit.store import Document


async def test_a_logboek_record_whose_answer_is_lost_is_written_once(ferretdb_proxy, mongo, namespace):
    database = f"{namespace}cutlogboek".replace(".", "_")
    client: AsyncMongoClient[Document] = AsyncMongoClient(f"mongodb://127.0.0.1:{ferretdb_proxy.port}/",
                                                          tz_aware=True, maxPoolSize=2)
    try:
        logboek = Logboek(client[database], "intake")
        await logboek.collection.find_one({"_id": "warm"})  # connected: the cut is the insert, not the handshake
        verwerking = Verwerking(logboek=logboek, principal=Principal("behandelaar-1", "gemeente", "0957"),
                                actie="update", resource_type="aanvraag", resource_id="a-1", trace_id="t-1",
                                methode="POST", route="/api/v1/aanvragen/{aanvraag_id}/besluit")
        ferretdb_proxy.arm(1, match=b"insert")
        await logboek.vastleggen(verwerking, 201)
        assert ferretdb_proxy.cut_mid == 1  # the insert reached FerretDB and its answer was dropped
        stored = await mongo[database].logboek.find({"trace_id": "t-1"}).to_list(10)
        assert len(stored) == 1 and stored[0]["status"] == 201 and stored[0]["resource_id"] == "a-1"
    finally:
        await client.close()
        await mongo.drop_database(database)
