"""Grants' reservation request through servicekit's unit of work (grants/volgorde.py), against an in-memory store:
a new command replaces the request as a whole, a redelivery changes nothing, a release writes its own field only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.support.memory import MemoryStore

from grants.volgorde import BESLOTEN, WACHT, Reserveringen
from servicekit.broker import EVENTS
from servicekit.envelope import new_event


class _Repo:
    """The parts of GrantsRepository the request's steps use: the request store and the ledger's release."""

    def __init__(self) -> None:
        self.verzoeken = MemoryStore("reserveringsverzoeken")
        self.vrijgegeven: list[tuple[str, str, int]] = []

    async def release_budget(self, lid: str, aanvraag_id: str, bedrag_cents: int) -> None:
        self.vrijgegeven.append((lid, aanvraag_id, bedrag_cents))


def _request(command_id: str, **velden: Any) -> dict[str, Any]:
    return {"_id": "a-1", "command_id": command_id, "status": WACHT, "bedrag_cents": 800_000, **velden}


async def test_a_new_command_replaces_the_request_whole_and_a_redelivery_changes_nothing() -> None:
    repo = _Repo()
    r = Reserveringen(repo, {}, str)  # type: ignore[arg-type]
    store = repo.verzoeken
    eerder, geschreven = await r._store_request(_request("c-1", budgetperiode="2026"), [], "c-1")
    assert eerder is None and geschreven == store.docs["a-1"]  # the document as stored, for the relay
    assert store.reads == 0  # new: inserted without a read
    store.bump("a-1", status=BESLOTEN, uitkomst={"gereserveerd": True}, besloten_op=datetime.now(UTC),
               outbox=[{"id": "c-1:antwoord"}], has_outbox=True)  # decided, its reply not yet published

    antwoord = new_event("ips.opdracht.mislukt.v1", service="grants", subject="a-1", event_id="c-2:antwoord")
    eerder, geschreven = await r._store_request(_request("c-2"), [(antwoord, EVENTS)], "c-2")
    assert eerder == BESLOTEN and geschreven["revision"] == store.docs["a-1"]["revision"]
    doc = store.docs["a-1"]
    assert doc["status"] == WACHT and doc["command_id"] == "c-2"
    assert "uitkomst" not in doc and "besloten_op" not in doc and "budgetperiode" not in doc  # nothing of the old
    assert [e["id"] for e in doc["outbox"]] == ["c-1:antwoord", "c-2:antwoord"]  # the unpublished reply stays
    writes = store.writes

    assert (await r._store_request(_request("c-2"), [(antwoord, EVENTS)], "c-2"))[0] is None  # redelivered
    assert store.writes == writes and len(store.docs["a-1"]["outbox"]) == 2


async def test_a_release_writes_its_own_field_and_leaves_the_outbox_as_the_database_has_it() -> None:
    repo = _Repo()
    r = Reserveringen(repo, {}, str)  # type: ignore[arg-type]
    store = repo.verzoeken
    await r._store_request(_request("c-1", regeling="ips-2026", budgetperiode="2026", gemeente_code="0957"), [], "c-1")
    store.bump("a-1", status=BESLOTEN, uitkomst={"gereserveerd": True}, outbox=[{"id": "c-1:antwoord"}],
               has_outbox=True)

    def relay_clears(s: MemoryStore, doc: dict[str, Any]) -> None:  # after our read, before our write
        s.touch("a-1", outbox=[], has_outbox=False)  # the relay clears without raising the revision

    store.before_replace = relay_clears
    op = datetime(2026, 11, 29, tzinfo=UTC)
    assert await r.vrijgeven("a-1", op)
    doc = store.docs["a-1"]
    assert doc["vrijgegeven_op"] == op and doc["outbox"] == [] and doc["has_outbox"] is False  # not put back
    assert repo.vrijgegeven == [("ips-2026:2026", "a-1", 800_000)]
