"""payments' command handlers on in-memory fakes of the repository (no broker, no database): the money rules
through the handlers, once per command. The same flows on the real stack: tests/integration/test_payments_flow.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.support.memory import MemoryPaymentsRepository, MemoryStore

from payments import domain as d
from payments.bootstrap import REKENINGEN_FILE, load_rekeningen
from payments.handlers import NietsTeBetalen, PaymentsHandlers, Rekeningen
from servicekit.commands import COMMAND_COMPLETED, COMMAND_FAILED
from servicekit.envelope import CloudEvent, new_event
from servicekit.store import Document

AANMAKEN = "ips.betaling.opdrachten_aanmaken.v1"
VERREKENEN = "ips.vaststelling.verrekenen.v1"
STOPBERICHT = "ips.traject.stopbericht_doorgeven.v1"
KVK = "12345678"
BUDGET = {"niveau": "budget", "rijkPercentage": 50, "gemeentenPercentage": 50}
NU = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
def repo() -> MemoryPaymentsRepository:
    return MemoryPaymentsRepository()


@pytest.fixture
def handlers(repo: MemoryPaymentsRepository) -> PaymentsHandlers:
    return PaymentsHandlers(repo, load_rekeningen(REKENINGEN_FILE), wake=lambda *a, **k: None,  # type: ignore[arg-type]
                            clock=lambda: NU)


def command(type_: str, aanvraag_id: str, data: dict[str, Any], cid: str) -> CloudEvent:
    return new_event(type_, service="process_engine", subject=aanvraag_id, data=data, event_id=cid)


def aanmaken(aanvraag_id: str, bedrag: int = 100_000, **extra: Any) -> dict[str, Any]:
    return {"aanvraag_id": aanvraag_id, "beschikking_id": f"B-{aanvraag_id}", "ggz_kvk_nummer": KVK,
            "gemeente_code": "0957", "regeling": "ips-gemeenten-2023", "bedrag_cents": bedrag, "financiering": BUDGET,
            "moment": "toekenning", **extra}


def verrekenen(aanvraag_id: str, vastgesteld: int, beschikking: str | None = None) -> dict[str, Any]:
    return {"aanvraag_id": aanvraag_id, "ggz_kvk_nummer": KVK, "gemeente_code": "0957",
            "regeling": "ips-gemeenten-2023", "vastgesteld_cents": vastgesteld, "vaststellingsdatum": "2024-09-01",
            "beschikking_id": beschikking or f"V-{aanvraag_id}"}


def replies(store: MemoryStore, doc_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [(e["routing_key"], json.loads(e["body"])["data"]) for e in store.docs[doc_id]["outbox"]]


def betaald(repo: MemoryPaymentsRepository, opdracht_id: str) -> None:
    """What a booked batch leaves: the order paid."""
    repo.opdrachten[opdracht_id]["status"] = d.BETAALD


async def test_orders_of_the_schedule_are_made_booked_and_answered_once(handlers: PaymentsHandlers,
                                                                        repo: MemoryPaymentsRepository) -> None:
    data = aanmaken("A1", 1_000_01, betaalschema=[{"moment": "toekenning", "percentage": 80},
                                                  {"moment": "vaststelling", "percentage": 20}])
    cmd = command(AANMAKEN, "A1", data, "c1")
    await handlers.opdrachten_aanmaken(cmd)
    await handlers.opdrachten_aanmaken(cmd)  # redelivered
    [(soort, antwoord)] = replies(repo.zaken, "A1")
    assert soort == COMMAND_COMPLETED
    [o] = antwoord["opdrachten"]
    assert (o["bedragCents"], o["nettoCents"], o["status"]) == (80_000, 80_000, d.GEREED)
    assert (o["rijkCents"], o["gemeenteCents"]) == (40_000, 40_000)
    assert len(repo.opdrachten) == 1 and repo.zaken.docs["A1"]["opdrachten"] == [o["opdrachtId"]]
    assert repo.grootboek[KVK]["totaal"] == {"besteld_cents": 80_000}

    await handlers.opdrachten_aanmaken(command(AANMAKEN, "A1", {**data, "moment": "vaststelling"}, "c2"))
    rest = replies(repo.zaken, "A1")[1][1]["opdrachten"][0]
    assert rest["bedragCents"] == 20_001  # the last installment takes the rounding rest
    assert repo.grootboek[KVK]["totaal"] == {"besteld_cents": 100_001}


async def test_unusable_financing_is_a_business_failure_and_writes_no_order(handlers: PaymentsHandlers,
                                                                            repo: MemoryPaymentsRepository) -> None:
    await handlers.opdrachten_aanmaken(command(AANMAKEN, "A1", aanmaken("A1", financiering={"x": 1}), "c1"))
    [(soort, antwoord)] = replies(repo.zaken, "A1")
    assert soort == COMMAND_FAILED and antwoord["code"] == "IPS-BETALING-001"
    assert repo.opdrachten == {} and repo.grootboek == {}


async def test_without_a_valid_account_the_order_waits(repo: MemoryPaymentsRepository) -> None:
    rekeningen = load_rekeningen(REKENINGEN_FILE)
    handlers = PaymentsHandlers(repo, Rekeningen(rekeningen.debiteur, {}), wake=lambda *a, **k: None)  # type: ignore[arg-type]
    await handlers.opdrachten_aanmaken(command(AANMAKEN, "A1", aanmaken("A1"), "c1"))
    assert replies(repo.zaken, "A1")[0][1]["opdrachten"][0]["status"] == d.REKENING_ONTBREEKT


async def test_vaststelling_below_an_unbatched_order_reduces_it_once(handlers: PaymentsHandlers,
                                                                     repo: MemoryPaymentsRepository) -> None:
    await handlers.opdrachten_aanmaken(command(AANMAKEN, "A1", aanmaken("A1", 100_000), "c1"))
    cmd = command(VERREKENEN, "A1", verrekenen("A1", 60_000), "v1")
    await handlers.verrekenen(cmd)
    await handlers.verrekenen(cmd)
    (_, antwoord), = [r for r in replies(repo.zaken, "A1") if "soort" in r[1]]
    assert (antwoord["soort"], antwoord["verlaagdCents"], antwoord["saldoCents"]) == ("geen", 40_000, 0)
    [o] = repo.opdrachten.values()
    assert (o["bedrag_cents"], o["netto_cents"], o["status"], o["verlaging"]["cents"]) == (60_000, 60_000, "gereed",
                                                                                           40_000)
    assert o["aandeel"] == {"rijk_cents": 30_000, "gemeente_cents": 30_000}
    assert repo.grootboek[KVK]["totaal"] == {"besteld_cents": 100_000, "geannuleerd_cents": 40_000}
    assert repo.terugvorderingen == {}


async def test_vaststelling_below_what_was_paid_recovers_and_a_later_payment_is_set_off(
        handlers: PaymentsHandlers, repo: MemoryPaymentsRepository) -> None:
    await handlers.opdrachten_aanmaken(command(AANMAKEN, "A1", aanmaken("A1", 100_000), "c1"))
    betaald(repo, next(iter(repo.opdrachten)))
    await handlers.verrekenen(command(VERREKENEN, "A1", verrekenen("A1", 70_000), "v1"))
    antwoord = replies(repo.zaken, "A1")[-1][1]
    assert (antwoord["soort"], antwoord["saldoCents"], antwoord["verlaagdCents"]) == ("terugvordering", -30_000, 0)
    assert antwoord["terugvorderenUiterlijk"] == "2029-09-03"  # 5 years, 2029-09-01 is a Saturday (Atw)
    tid = antwoord["terugvorderingId"]
    assert repo.terugvorderingen[tid]["open_cents"] == 30_000
    assert tid in repo.grootboek[KVK]["open_terugvorderingen"]

    await handlers.opdrachten_aanmaken(command(AANMAKEN, "A2", aanmaken("A2", 50_000), "c2"))
    [o] = replies(repo.zaken, "A2")[0][1]["opdrachten"]
    assert (o["bedragCents"], o["verrekendCents"], o["nettoCents"]) == (50_000, 30_000, 20_000)
    assert repo.terugvorderingen[tid]["status"] == d.VOLDAAN
    assert "open_terugvorderingen" not in repo.grootboek[KVK] or not repo.grootboek[KVK]["open_terugvorderingen"]
    assert repo.grootboek[KVK]["totaal"]["verrekend_cents"] == 30_000


async def test_a_second_vaststelling_is_refused(handlers: PaymentsHandlers, repo: MemoryPaymentsRepository) -> None:
    await handlers.opdrachten_aanmaken(command(AANMAKEN, "A1", aanmaken("A1", 100_000), "c1"))
    await handlers.verrekenen(command(VERREKENEN, "A1", verrekenen("A1", 100_000), "v1"))
    await handlers.verrekenen(command(VERREKENEN, "A1", verrekenen("A1", 90_000, beschikking="V-ander"), "v2"))
    soort, antwoord = replies(repo.zaken, "A1")[-1]
    assert soort == COMMAND_FAILED and antwoord["code"] == "IPS-BETALING-003"
    assert repo.zaken.docs["A1"]["verrekening"]["beschikkingId"] == "V-A1"


async def test_vaststelling_above_what_was_ordered_pays_the_rest(handlers: PaymentsHandlers,
                                                                 repo: MemoryPaymentsRepository) -> None:
    await handlers.opdrachten_aanmaken(command(AANMAKEN, "A1", aanmaken("A1", 100_000), "c1"))
    await handlers.verrekenen(command(VERREKENEN, "A1", verrekenen("A1", 125_000), "v1"))
    antwoord = replies(repo.zaken, "A1")[-1][1]
    assert (antwoord["soort"], antwoord["saldoCents"]) == ("nabetaling", 25_000)
    assert repo.opdrachten[antwoord["opdrachtId"]]["moment"] == "vaststelling"
    assert len(repo.zaken.docs["A1"]["opdrachten"]) == 2


async def test_stopbericht_cancels_later_moments_and_restores_their_set_off(
        handlers: PaymentsHandlers, repo: MemoryPaymentsRepository) -> None:
    schema = [{"moment": "toekenning", "percentage": 50}, {"moment": "vaststelling", "percentage": 50}]
    await handlers.opdrachten_aanmaken(command(AANMAKEN, "A1", aanmaken("A1", 100_000, betaalschema=schema), "c1"))
    betaald(repo, next(iter(repo.opdrachten)))
    await handlers.verrekenen(command(VERREKENEN, "A1", verrekenen("A1", 20_000), "v1"))  # recovers 30_000
    tid = replies(repo.zaken, "A1")[-1][1]["terugvorderingId"]
    later = aanmaken("B1", 40_000, betaalschema=schema, moment="vaststelling")
    await handlers.opdrachten_aanmaken(command(AANMAKEN, "B1", later, "c2"))
    [o] = replies(repo.zaken, "B1")[0][1]["opdrachten"]
    assert (o["verrekendCents"], repo.terugvorderingen[tid]["open_cents"]) == (20_000, 10_000)

    stop = command(STOPBERICHT, "B1", {"aanvraag_id": "B1", "einddatum": "2024-06-30"}, "s1")
    await handlers.stopbericht_doorgeven(stop)
    await handlers.stopbericht_doorgeven(stop)
    assert replies(repo.zaken, "B1")[-1][1] == {"geannuleerdeOpdrachten": [o["opdrachtId"]]}
    assert repo.opdrachten[o["opdrachtId"]]["status"] == d.GEANNULEERD
    assert repo.terugvorderingen[tid]["open_cents"] == 30_000  # the set-off is undone, once
    assert repo.grootboek[KVK]["totaal"]["geannuleerd_cents"] == 20_000
    assert repo.zaken.docs["B1"]["einddatum"] == "2024-06-30"


async def test_a_concurrent_write_to_the_case_is_retried_on_the_fresh_case(handlers: PaymentsHandlers,
                                                                           repo: MemoryPaymentsRepository) -> None:
    await handlers.opdrachten_aanmaken(command(AANMAKEN, "A1", aanmaken("A1"), "c1"))
    conflicts = [1]

    def concurrently(store: MemoryStore, doc: Document) -> None:
        if conflicts:
            conflicts.pop()
            store.bump("A1", einddatum="2030-01-01")

    repo.zaken.before_replace = concurrently
    await handlers.verrekenen(command(VERREKENEN, "A1", verrekenen("A1", 100_000), "v1"))
    doc = repo.zaken.docs["A1"]
    assert doc["einddatum"] == "2030-01-01" and doc["verrekening"]["soort"] == "geen"
    assert doc["applied"] == ["c1", "v1"] and len(doc["outbox"]) == 2


async def test_a_batch_claims_the_ready_orders_once_and_is_sent_and_booked(handlers: PaymentsHandlers,
                                                                           repo: MemoryPaymentsRepository) -> None:
    for n, bedrag in enumerate((100_000, 50_001)):
        await handlers.opdrachten_aanmaken(command(AANMAKEN, f"A{n}", aanmaken(f"A{n}", bedrag), f"c{n}"))
    batch = await handlers.batch_aanmaken("nacht-1", 10, None, NU)
    assert (batch["status"], batch["aantal"], batch["control_sum_cents"]) == (d.AANGEMAAKT, 2, 150_001)
    assert batch["pain001"].count("<CdtTrfTxInf>") == 2 and batch["uitvoerdatum"] == "2026-11-23"
    assert {o["status"] for o in repo.opdrachten.values()} == {d.IN_BATCH}
    assert await handlers.batch_aanmaken("nacht-1", 10, None, NU) == batch  # the same key: the same batch
    with pytest.raises(d.BatchConflict, match="ander verzoek"):
        await handlers.batch_aanmaken("nacht-1", 5, None, NU)
    with pytest.raises(d.BatchConflict, match="eerst verzonden"):
        await handlers.batch_geboekt(batch["_id"], NU)

    assert (await handlers.batch_verzonden(batch["_id"], NU))["status"] == d.VERZONDEN
    assert (await handlers.batch_verzonden(batch["_id"], NU))["status"] == d.VERZONDEN  # repeated: no change
    geboekt = await handlers.batch_geboekt(batch["_id"], NU)
    await handlers.batch_geboekt(batch["_id"], NU)
    assert geboekt["status"] == d.GEBOEKT
    assert {o["status"] for o in repo.opdrachten.values()} == {d.BETAALD}
    assert repo.grootboek[KVK]["totaal"] == {"besteld_cents": 150_001, "betaald_cents": 150_001}


async def test_no_ready_order_means_no_batch_and_an_order_without_account_stays_out(
        repo: MemoryPaymentsRepository) -> None:
    rekeningen = load_rekeningen(REKENINGEN_FILE)
    zonder = PaymentsHandlers(repo, Rekeningen(rekeningen.debiteur, {}), wake=lambda *a, **k: None,  # type: ignore[arg-type]
                              clock=lambda: NU)
    with pytest.raises(NietsTeBetalen):
        await zonder.batch_aanmaken("leeg", 10, None, NU)
    assert repo.batches == {}
    met = PaymentsHandlers(repo, rekeningen, wake=lambda *a, **k: None, clock=lambda: NU)  # type: ignore[arg-type]
    await met.opdrachten_aanmaken(command(AANMAKEN, "A1", aanmaken("A1"), "c1"))
    with pytest.raises(NietsTeBetalen):  # the account disappeared from the configuration: the order waits
        await zonder.batch_aanmaken("zonder", 10, None, NU)
    assert [o["status"] for o in repo.opdrachten.values()] == [d.REKENING_ONTBREEKT]
    batch = await met.batch_aanmaken("met", 10, None, NU)  # the account is back: ready again and paid
    assert batch["aantal"] == 1
