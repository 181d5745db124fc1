"""Issue 14 item 5: a SEPA batch claims and books its orders in bulk, on the real FerretDB (through its front).

* the claim is a few bulk commands of revision-checked updates, not one update per order;
* an order changed between reading and claiming is read again: claimed when still ready, left alone when another
  batch took it or it left ``gereed``; an order stored before orders had a revision is claimed by its status;
* keyed ledger bookings made together count once, also when the call is repeated after a crash.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from payments.grootboek import VENSTER
from payments.repository import BULK, PaymentsRepository
from servicekit.settings import FERRETDB_POOL_SIZE


class Updates(monitoring.CommandListener):
    """Counts the update commands (and their statements) the client sends."""

    def __init__(self) -> None:
        self.commands = 0
        self.statements = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "update":
            self.commands += 1
            self.statements += len(event.command.get("updates") or [])

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def counted(infra: Any, namespace: str) -> Any:
    updates = Updates()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongo_url, tz_aware=True, maxPoolSize=FERRETDB_POOL_SIZE, event_listeners=[updates])
    yield client[f"{namespace}ipsflow_payments".replace(".", "_")], updates
    await client.close()


def order(i: int, **extra: Any) -> dict[str, Any]:
    return {"_id": f"o-{i:03d}", "ggz_kvk_nummer": "12345678", "status": "gereed", "batch_id": None,
            "netto_cents": 1_000 + i, "aangemaakt_op": datetime(2026, 1, 1, tzinfo=UTC), "revision": 0, **extra}


async def test_claims_go_in_bulk_and_a_changed_order_is_read_again(counted):
    database, updates = counted
    repo = PaymentsRepository(database)
    legacy = [{k: v for k, v in order(i).items() if k != "revision"} for i in (200, 201)]
    await repo.opdrachten.insert_many([order(i) for i in range(150)] + legacy)
    gelezen = await repo.opdrachten.find({"status": "gereed"}).sort("_id", 1).to_list(None)
    assert len(gelezen) == 152
    # between reading and claiming: another batch takes o-010, o-020 waits for an account again, a vaststelling
    # records that o-030 was not reduced (it stays ready, at a new revision)
    assert await repo.status_zetten("o-010", ("gereed",), "in_batch", batch_id="B")
    assert await repo.status_zetten("o-020", ("gereed",), "rekening_ontbreekt")
    assert await repo.verlaging_vastleggen("o-030", {"cents": 0})
    updates.commands = updates.statements = 0

    geclaimd = await repo.in_bulk_zetten(gelezen, "gereed", {"status": "in_batch", "batch_id": "A"})

    ids = sorted(o["_id"] for o in geclaimd)
    assert len(ids) == len(set(ids)) == 150
    assert "o-010" not in ids and "o-020" not in ids and {"o-030", "o-200", "o-201"} <= set(ids)
    stored = {o["_id"]: o for o in await repo.opdrachten.find({}).to_list(None)}
    assert sorted(i for i, o in stored.items() if o["batch_id"] == "A") == ids
    assert all(stored[i]["status"] == "in_batch" for i in ids)
    assert (stored["o-010"]["batch_id"], stored["o-020"]["status"]) == ("B", "rekening_ontbreekt")
    assert all(o["revision"] == stored[o["_id"]]["revision"] for o in geclaimd)  # returned as stored
    # 150 revision-checked statements: 3 commands, one of them sent again for the 3 that changed (once more
    # for o-030 at its new revision), and 2 single updates for the orders without a revision; it was 152
    print(f"claiming 152 orders: {updates.commands} update commands, {updates.statements} statements")
    assert updates.commands <= math.ceil(150 / BULK) + 2 + 2


async def test_bookings_made_together_count_once_also_when_repeated(counted):
    database, updates = counted
    repo = PaymentsRepository(database)
    assert await repo.boeken("12345678", "o-000:besteld", {"totaal": {"besteld_cents": 5}})
    boekingen = [(f"o-{i:03d}:betaald", {"totaal": {"betaald_cents": 100}, "rijk": {"betaald_cents": 60},
                                         "gemeente": {"betaald_cents": 40}}) for i in range(100)]
    updates.commands = 0
    await repo.boeken_samen("12345678", boekingen)
    # a ledger write per VENSTER bookings and a move of the window per write (it was one per booking)
    assert updates.commands <= 2 * math.ceil(100 / VENSTER)
    ledger = await repo.grootboek_van("12345678")
    assert ledger is not None
    assert (ledger["totaal"]["betaald_cents"], ledger["rijk"]["betaald_cents"]) == (10_000, 6_000)
    # a crash after part of them: the repeat books nothing twice (o-099 made undone, wherever it was kept)
    if "o-099:betaald" in (ledger.get("boekingen") or {}):
        await database["grootboek"].update_one({"_id": "12345678"}, {"$unset": {"boekingen.o-099:betaald": ""}})
    else:
        await database["grootboekposten"].delete_one({"_id": "12345678/o-099:betaald"})
    await database["grootboek"].update_one({"_id": "12345678"}, {"$inc": {
        "totaal.betaald_cents": -100, "rijk.betaald_cents": -60, "gemeente.betaald_cents": -40}})
    await repo.boeken_samen("12345678", boekingen)
    ledger = await repo.grootboek_van("12345678")
    assert ledger is not None
    assert (ledger["totaal"]["betaald_cents"], ledger["gemeente"]["betaald_cents"]) == (10_000, 4_000)
    assert len(await repo.boekingen_van("12345678")) == 101
