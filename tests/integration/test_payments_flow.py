"""payments as a real process on the real broker and FerretDB: engine commands in, replies out, SEPA batches
over HTTP, the ledger, recovery and a SIGKILL in the middle of a batch.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from payments.bootstrap import REKENINGEN_FILE, load_rekeningen
from payments.handlers import PaymentsHandlers, Rekeningen
from payments.sepa import schema_errors
from tests.conftest import eventually
from tests.support.faults import FaultyPaymentsRepository
from tests.support.tokens import ADMIN, BEHEER_ZONDER_ROL, bearer

BETAALBEHEER = bearer("uwv-betaal-1", "uwv", "UWV", "betaalbeheerder")
UWV_ANDERS = bearer("uwv-budget-1", "uwv", "UWV", "budgetbeheerder")
GGZ = bearer("ggz-1", "ggz", "12345678", "aanvrager")
ENGINE_NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
AANMAKEN = "ips.betaling.opdrachten_aanmaken.v1"
VERREKENEN = "ips.vaststelling.verrekenen.v1"
STOPBERICHT = "ips.traject.stopbericht_doorgeven.v1"
BUDGET = {"niveau": "budget", "rijkPercentage": 50, "gemeentenPercentage": 50}


def aanmaken(aanvraag_id: str, *, kvk: str = "12345678", bedrag: int = 1_132_500, beschikking: str | None = None,
             **extra: Any) -> dict[str, Any]:
    return {"aanvraag_id": aanvraag_id, "beschikking_id": beschikking or f"B-{aanvraag_id}", "ggz_kvk_nummer": kvk,
            "gemeente_code": "0957", "regeling": "ips-gemeenten-2023", "bedrag_cents": bedrag,
            "financiering": BUDGET, "betaalschema": [{"moment": "toekenning", "percentage": 100}],
            "moment": "toekenning", **extra}


def verrekenen(aanvraag_id: str, vastgesteld: int, *, kvk: str = "12345678") -> dict[str, Any]:
    return {"aanvraag_id": aanvraag_id, "ggz_kvk_nummer": kvk, "gemeente_code": "0957",
            "regeling": "ips-gemeenten-2023", "vastgesteld_cents": vastgesteld, "vaststellingsdatum": "2024-09-01",
            "beschikking_id": f"V-{aanvraag_id}"}


async def batch_boeken(http: httpx.AsyncClient, sleutel: str) -> dict[str, Any]:
    """Build a batch of everything ready, mark it sent and booked (the advance is paid)."""
    r = await http.post("/api/v1/betaalbatches", headers={**BETAALBEHEER, "Idempotency-Key": sleutel})
    assert r.status_code == 201, r.text
    batch = r.json()
    for stap in ("verzonden", "geboekt"):
        assert (await http.post(f"/api/v1/betaalbatches/{batch['batchId']}/{stap}", headers=BETAALBEHEER)
                ).status_code == 200
    return batch  # type: ignore[no-any-return]


def db(mongo, namespace: str):
    return mongo[f"{namespace}ipsflow_payments".replace(".", "_")]


async def test_batch_of_three_validates_against_the_xsd_and_sums_to_the_ledger(service, driver):
    payments = service("payments").start()
    bedragen = {"A1": ("12345678", 1_132_500), "A2": ("12345678", 800_000), "A3": ("87654321", 800_001)}
    for case, (kvk, bedrag) in bedragen.items():
        reply = await driver.call(AANMAKEN, case, aanmaken(case, kvk=kvk, bedrag=bedrag))
        assert reply.type == "ips.opdracht.voltooid.v1", reply.data
        [opdracht] = reply.data["opdrachten"]
        assert opdracht["bedragCents"] == bedrag == opdracht["rijkCents"] + opdracht["gemeenteCents"]
        assert opdracht["status"] == "gereed"
    # a ggz without a configured account: its order waits and is never put in a batch
    zonder = await driver.call(AANMAKEN, "A4", aanmaken("A4", kvk="11111111", bedrag=500_000))
    assert zonder.data["opdrachten"][0]["status"] == "rekening_ontbreekt"

    async with httpx.AsyncClient(base_url=payments.url, timeout=30) as http:
        # Moving money is UWV's betaalbeheerder's alone: not another UWV role, not functioneel beheer with any
        # role (it administers the system, it does not pay).
        for niet_betalen in (UWV_ANDERS, BEHEER_ZONDER_ROL, ADMIN, bearer("b", "beheer", "ipsflow", "betaalbeheerder")):
            verboden = await http.post("/api/v1/betaalbatches", headers={**niet_betalen, "Idempotency-Key": "k"})
            assert verboden.status_code == 403, verboden.text
        assert (await http.post("/api/v1/betaalbatches", headers=BETAALBEHEER)).status_code == 400
        r = await http.post("/api/v1/betaalbatches", headers={**BETAALBEHEER, "Idempotency-Key": "batch-1"})
        assert r.status_code == 201, r.text
        batch = r.json()
        assert batch["aantal"] == 3 and batch["controlSumCents"] == sum(b for _, b in bedragen.values())
        again = await http.post("/api/v1/betaalbatches", headers={**BETAALBEHEER, "Idempotency-Key": "batch-1"})
        assert again.json() == batch

        xml = await http.get(f"/api/v1/betaalbatches/{batch['batchId']}/pain001", headers=BETAALBEHEER)
        assert xml.status_code == 200 and xml.headers["content-type"].startswith("application/xml")
        assert schema_errors(xml.content) == []
        assert b"<CtrlSum>27325.01</CtrlSum>" in xml.content and b"<NbOfTxs>3</NbOfTxs>" in xml.content

        niets = await http.post("/api/v1/betaalbatches", headers={**BETAALBEHEER, "Idempotency-Key": "batch-2"})
        assert niets.status_code == 409  # everything ready is in batch-1; the order without an account waits

        te_vroeg = await http.post(f"/api/v1/betaalbatches/{batch['batchId']}/geboekt", headers=BETAALBEHEER)
        assert te_vroeg.status_code == 409
        for stap in ("verzonden", "geboekt"):
            assert (await http.post(f"/api/v1/betaalbatches/{batch['batchId']}/{stap}", headers=ADMIN)
                    ).status_code == 403
        # reading stays open to beheer
        assert (await http.get(f"/api/v1/betaalbatches/{batch['batchId']}", headers=BEHEER_ZONDER_ROL)
                ).json()["status"] == "aangemaakt"
        assert (await http.post(f"/api/v1/betaalbatches/{batch['batchId']}/verzonden",
                                headers=BETAALBEHEER)).json()["status"] == "verzonden"
        for _ in range(2):  # booking twice books once
            geboekt = await http.post(f"/api/v1/betaalbatches/{batch['batchId']}/geboekt", headers=BETAALBEHEER)
            assert geboekt.json()["status"] == "geboekt"

        betaald = 0
        for kvk in ("12345678", "87654321"):
            ledger = (await http.get(f"/api/v1/grootboek/{kvk}", headers=BETAALBEHEER)).json()
            t = ledger["totaal"]
            assert t["betaaldCents"] == t["besteldCents"]
            assert ledger["rijk"]["betaaldCents"] + ledger["gemeente"]["betaaldCents"] == t["betaaldCents"]
            betaald += t["betaaldCents"]
        assert betaald == batch["controlSumCents"]

        eigen = await http.get("/api/v1/grootboek/12345678", headers=GGZ)
        assert eigen.status_code == 200 and eigen.json()["totaal"]["betaaldCents"] == 1_932_500
        assert (await http.get("/api/v1/grootboek/87654321", headers=GGZ)).status_code == 403
        opdrachten = (await http.get("/api/v1/betaalopdrachten?ggz=11111111", headers=BETAALBEHEER)).json()
        assert [o["status"] for o in opdrachten] == ["rekening_ontbreekt"]
        assert (await http.get("/api/v1/betaalopdrachten?ggz=11111111", headers=GGZ)).status_code == 403


async def test_a_redelivered_command_makes_no_second_payment(service, driver, mongo, namespace):
    service("payments").start()
    command = await driver.send(AANMAKEN, "R1", aanmaken("R1"), command_id="cmd-r1")
    first = await driver.reply(command)
    await driver.send(AANMAKEN, "R1", aanmaken("R1"), command_id="cmd-r1")  # redelivery: same command id
    second = await driver.call(AANMAKEN, "R1", aanmaken("R1"))  # another command for the same beschikking+moment
    assert first.data["opdrachten"][0]["opdrachtId"] == second.data["opdrachten"][0]["opdrachtId"]
    await asyncio.sleep(1.0)
    assert len(driver.replies["cmd-r1"]) == 1
    database = db(mongo, namespace)
    assert await database["opdrachten"].count_documents({"aanvraag_id": "R1"}) == 1
    ledger = await database["grootboek"].find_one({"_id": "12345678"})
    assert ledger["totaal"]["besteld_cents"] == 1_132_500


async def test_issue_example_recovery_and_set_off(service, driver):
    payments = service("payments").start()
    # EPA EUR 11,325 fully advanced and booked; pro_rata vaststelling EUR 1,887.50 -> recover EUR 9,437.50
    await driver.call(AANMAKEN, "E1", aanmaken("E1"))
    async with httpx.AsyncClient(base_url=payments.url, timeout=30) as http:
        assert (await batch_boeken(http, "e1"))["controlSumCents"] == 1_132_500
    reply = await driver.call(VERREKENEN, "E1", verrekenen("E1", 188_750))
    assert reply.type == "ips.opdracht.voltooid.v1", reply.data
    assert reply.data["soort"] == "terugvordering" and reply.data["saldoCents"] == -943_750
    # vaststelling 1 September 2024: 5 years later is Saturday 1 September 2029, the Atw moves it to the Monday
    assert reply.data["betaaldCents"] == 1_132_500 and reply.data["terugvorderenUiterlijk"] == "2029-09-03"
    assert reply.data["verlaagdCents"] == 0
    # under 'full': vastgesteld = granted, nothing to recover
    await driver.call(AANMAKEN, "E2", aanmaken("E2", kvk="87654321"))
    geen = await driver.call(VERREKENEN, "E2", verrekenen("E2", 1_132_500, kvk="87654321"))
    assert geen.data["soort"] == "geen" and geen.data["terugvorderingId"] is None
    # the next payment to the same ggz is set off against the open recovery
    later = await driver.call(AANMAKEN, "E3", aanmaken("E3", bedrag=800_000))
    [o] = later.data["opdrachten"]
    assert (o["bedragCents"], o["verrekendCents"], o["nettoCents"], o["status"]) == (800_000, 800_000, 0, "verrekend")
    laatste = await driver.call(AANMAKEN, "E4", aanmaken("E4", bedrag=800_000))
    [o4] = laatste.data["opdrachten"]
    assert (o4["verrekendCents"], o4["nettoCents"]) == (143_750, 656_250)
    geen_verrekening = await driver.call(AANMAKEN, "E5", aanmaken("E5", bedrag=1_000, verrekenen=False))
    assert geen_verrekening.data["opdrachten"][0]["verrekendCents"] == 0
    async with httpx.AsyncClient(base_url=payments.url, timeout=30) as http:
        ledger = (await http.get("/api/v1/grootboek/12345678", headers=BETAALBEHEER)).json()
    t = ledger["totaal"]
    assert t["teruggevorderdCents"] == 943_750 and t["verrekendCents"] == 943_750
    assert ledger["openTerugvorderingen"] == []
    # a vaststelling above what was paid: the remainder is paid
    await driver.call(AANMAKEN, "E6", aanmaken("E6", kvk="87654321", bedrag=500_000))
    meer = await driver.call(VERREKENEN, "E6", verrekenen("E6", 600_000, kvk="87654321"))
    assert meer.data["soort"] == "nabetaling" and meer.data["saldoCents"] == 100_000 and meer.data["opdrachtId"]


async def test_vaststelling_below_an_unbatched_advance_reduces_the_order_instead_of_recovering(service, driver):
    payments = service("payments").start()
    # EPA EUR 11,325 ordered as advance but not yet in a batch; vastgesteld EUR 1,887.50: the open order is
    # reduced to EUR 1,887.50 and nothing is recovered (what was never paid is simply not paid)
    await driver.call(AANMAKEN, "U1", aanmaken("U1"))
    command = await driver.send(VERREKENEN, "U1", verrekenen("U1", 188_750), command_id="cmd-u1")
    reply = await driver.reply(command)
    assert reply.type == "ips.opdracht.voltooid.v1", reply.data
    assert reply.data == {"betaaldCents": 188_750, "saldoCents": 0, "soort": "geen", "terugvorderingId": None,
                          "terugvorderenUiterlijk": None, "opdrachtId": None, "verlaagdCents": 943_750}
    await driver.send(VERREKENEN, "U1", verrekenen("U1", 188_750), command_id="cmd-u1")  # redelivered
    again = await driver.call(VERREKENEN, "U1", verrekenen("U1", 188_750))  # a second command, same vaststelling
    assert again.data == reply.data
    await asyncio.sleep(1.0)
    assert len(driver.replies["cmd-u1"]) == 1
    # a ggz without an account: its waiting order is cancelled entirely by a vaststelling of nil
    await driver.call(AANMAKEN, "U2", aanmaken("U2", kvk="11111111", bedrag=800_000))
    nul = await driver.call(VERREKENEN, "U2", verrekenen("U2", 0, kvk="11111111"))
    assert (nul.data["soort"], nul.data["verlaagdCents"], nul.data["betaaldCents"]) == ("geen", 800_000, 0)
    async with httpx.AsyncClient(base_url=payments.url, timeout=30) as http:
        [o] = (await http.get("/api/v1/betaalopdrachten?ggz=12345678", headers=BETAALBEHEER)).json()
        assert (o["bedragCents"], o["nettoCents"], o["status"]) == (188_750, 188_750, "gereed")
        assert o["rijkCents"] + o["gemeenteCents"] == 188_750
        [o2] = (await http.get("/api/v1/betaalopdrachten?ggz=11111111", headers=BETAALBEHEER)).json()
        assert (o2["bedragCents"], o2["status"]) == (0, "geannuleerd")
        assert (await http.get("/api/v1/terugvorderingen?ggz=12345678", headers=BETAALBEHEER)).json() == []
        batch = await batch_boeken(http, "u1")
        assert (batch["aantal"], batch["controlSumCents"]) == (1, 188_750)
        ledger = (await http.get("/api/v1/grootboek/12345678", headers=BETAALBEHEER)).json()
        leeg = (await http.get("/api/v1/grootboek/11111111", headers=BETAALBEHEER)).json()
    t = ledger["totaal"]
    assert (t["besteldCents"], t["geannuleerdCents"], t["betaaldCents"], t["teruggevorderdCents"]) == (
        1_132_500, 943_750, 188_750, 0)
    for kolom in ("besteldCents", "geannuleerdCents", "betaaldCents"):
        assert ledger["rijk"][kolom] + ledger["gemeente"][kolom] == t[kolom]
    assert (leeg["totaal"]["besteldCents"], leeg["totaal"]["geannuleerdCents"]) == (800_000, 800_000)


async def test_vaststelling_cancels_the_open_installment_and_recovers_only_the_paid_excess(service, driver):
    payments = service("payments").start()
    schema = [{"moment": "toekenning", "percentage": 80}, {"moment": "vaststelling", "percentage": 20}]
    await driver.call(AANMAKEN, "M1", aanmaken("M1", betaalschema=schema))
    async with httpx.AsyncClient(base_url=payments.url, timeout=30) as http:
        assert (await batch_boeken(http, "m1"))["controlSumCents"] == 906_000  # 80% paid
        await driver.call(AANMAKEN, "M1", aanmaken("M1", betaalschema=schema, moment="vaststelling"))  # 20% open
        reply = await driver.call(VERREKENEN, "M1", verrekenen("M1", 188_750))
        assert reply.type == "ips.opdracht.voltooid.v1", reply.data
        # the open EUR 2,265 is not paid; of the EUR 9,060 paid, EUR 7,172.50 is above the vastgesteld amount
        assert (reply.data["soort"], reply.data["verlaagdCents"], reply.data["betaaldCents"],
                reply.data["saldoCents"]) == ("terugvordering", 226_500, 906_000, -717_250)
        [t] = (await http.get("/api/v1/terugvorderingen?ggz=12345678", headers=BETAALBEHEER)).json()
        assert t["bedragCents"] == 717_250
        niets = await http.post("/api/v1/betaalbatches", headers={**BETAALBEHEER, "Idempotency-Key": "m2"})
        assert niets.status_code == 409  # the cancelled installment is never paid

        # a later case of the same ggz, partly set off against that recovery: only the part still to transfer
        # can be withheld; the part set off is settled and recovered like a payment
        later = await driver.call(AANMAKEN, "N1", aanmaken("N1", bedrag=800_000))
        [o] = later.data["opdrachten"]
        assert (o["verrekendCents"], o["nettoCents"]) == (717_250, 82_750)
        nul = await driver.call(VERREKENEN, "N1", verrekenen("N1", 0))
        assert (nul.data["soort"], nul.data["verlaagdCents"], nul.data["saldoCents"]) == (
            "terugvordering", 82_750, -717_250)
        opdrachten = {o["opdrachtId"]: o for o in
                      (await http.get("/api/v1/betaalopdrachten?ggz=12345678", headers=BETAALBEHEER)).json()}
        n1 = opdrachten[o["opdrachtId"]]
        assert (n1["bedragCents"], n1["verrekendCents"], n1["nettoCents"], n1["status"]) == (
            717_250, 717_250, 0, "verrekend")
        ledger = (await http.get("/api/v1/grootboek/12345678", headers=BETAALBEHEER)).json()
    t = ledger["totaal"]
    assert t["besteldCents"] == 1_132_500 + 800_000
    assert t["geannuleerdCents"] == 226_500 + 82_750 and t["betaaldCents"] == 906_000
    assert t["verrekendCents"] == 717_250 and t["teruggevorderdCents"] == 717_250 * 2
    # what stays ordered for both cases = paid + set off; what is recovered beyond the vastgesteld amounts
    assert t["besteldCents"] - t["geannuleerdCents"] == t["betaaldCents"] + t["verrekendCents"]
    assert t["besteldCents"] - t["geannuleerdCents"] - t["teruggevorderdCents"] == 188_750 + 0


async def test_stopbericht_cancels_orders_after_the_end_date_only(service, driver):
    service("payments").start()
    schema = [{"moment": "toekenning", "percentage": 80}, {"moment": "vaststelling", "percentage": 20}]
    await driver.call(AANMAKEN, "S1", aanmaken("S1", betaalschema=schema))
    v = await driver.call(AANMAKEN, "S1", aanmaken("S1", betaalschema=schema, moment="vaststelling"))
    assert v.data["opdrachten"][0]["bedragCents"] == 226_500
    stop = await driver.call(STOPBERICHT, "S1", {"aanvraag_id": "S1", "einddatum": "2024-06-30"})
    assert stop.data["geannuleerdeOpdrachten"] == [v.data["opdrachten"][0]["opdrachtId"]]
    await driver.call(AANMAKEN, "S2", aanmaken("S2"))
    niets = await driver.call(STOPBERICHT, "S2", {"aanvraag_id": "S2", "einddatum": "2024-06-30"})
    assert niets.data["geannuleerdeOpdrachten"] == []  # 100% advance: nothing to cancel


@pytest.mark.parametrize("fault", ["payments-hang-mid-batch", "payments-exit-mid-batch"])
async def test_killing_payments_in_the_middle_of_a_batch_loses_and_duplicates_nothing(service, driver, mongo,
                                                                                       namespace, fault):
    """hang: the process stops after claiming half and the test SIGKILLs it; exit: it exits there itself."""
    payments = service("payments", IPSFLOW_TEST_FAULT=fault).start()
    n = 300
    commands = [await driver.send(AANMAKEN, f"K{i}", aanmaken(f"K{i}", kvk=("12345678", "87654321")[i % 2],
                                                               bedrag=100_000 + i)) for i in range(n)]
    for command in commands:
        await driver.reply(command, timeout=120)
    database = db(mongo, namespace)
    expected = sum(100_000 + i for i in range(n))

    async def request_batch(url: str, timeout: float) -> httpx.Response:
        async with httpx.AsyncClient(base_url=url, timeout=timeout) as http:
            return await http.post("/api/v1/betaalbatches", json={"maxOpdrachten": 1000},
                                   headers={**BETAALBEHEER, "Idempotency-Key": "nachtbatch-1"})

    hanging = asyncio.create_task(request_batch(payments.url, 120))

    async def half_claimed() -> bool:
        return await database["opdrachten"].count_documents({"status": "in_batch"}) >= n // 2
    await eventually(half_claimed, timeout=60, what="half of the orders claimed")
    if fault == "payments-exit-mid-batch":
        assert await asyncio.to_thread(payments.wait_exit) == 70
    claimed_before = await database["opdrachten"].count_documents({"status": "in_batch"})
    assert n // 2 <= claimed_before < n
    payments.kill()  # SIGKILL in the middle of the batch (a no-op when it already exited)
    with pytest.raises(httpx.HTTPError):
        await hanging
    batch_doc = await database["batches"].find_one({})
    assert batch_doc["status"] == "opbouw"  # the crash left a half-built batch

    payments.start(IPSFLOW_TEST_FAULT="")
    r = await request_batch(payments.url, 120)
    assert r.status_code == 201, r.text
    batch = r.json()
    assert batch["aantal"] == n and batch["controlSumCents"] == expected

    orders = await database["opdrachten"].find({}).to_list(None)
    assert len(orders) == n
    assert Counter(o["batch_id"] for o in orders) == {batch["batchId"]: n}
    assert sorted(batch["opdrachten"]) == sorted(o["_id"] for o in orders)
    assert len(set(batch["opdrachten"])) == n
    assert sum(o["netto_cents"] for o in orders) == expected
    async with httpx.AsyncClient(base_url=payments.url, timeout=30) as http:
        xml = await http.get(f"/api/v1/betaalbatches/{batch['batchId']}/pain001", headers=BETAALBEHEER)
        assert schema_errors(xml.content) == []
        assert xml.content.count(b"<CdtTrfTxInf>") == n
        again = await request_batch(payments.url, 30)
        assert again.json() == batch
        assert (await http.post("/api/v1/betaalbatches", headers={**BETAALBEHEER, "Idempotency-Key": "b2"})
                ).status_code == 409


async def test_a_batch_goes_on_without_orders_whose_account_disappeared_after_they_were_claimed(
        service, driver, mongo, namespace):
    """The account configuration changes between claiming and building (here: a restart with a new
    rekeningen.json after a crash mid-batch): those orders wait again as rekening_ontbreekt, the rest is paid."""
    service("payments").start()
    for case, kvk in (("X1", "12345678"), ("X2", "12345678"), ("Y1", "87654321"), ("X3", "12345678")):
        await driver.call(AANMAKEN, case, aanmaken(case, kvk=kvk, bedrag=100_000))
        await asyncio.sleep(0.02)  # distinct aangemaakt_op: X1 and X2 are claimed first
    database = db(mongo, namespace)
    repo = FaultyPaymentsRepository(database, "payments-hang-mid-batch")
    rekeningen = load_rekeningen(REKENINGEN_FILE)
    handlers = PaymentsHandlers(repo, rekeningen, wake=lambda *a, **k: None)
    nu = datetime.now(UTC)
    hanging = asyncio.create_task(handlers.batch_aanmaken("wissel-1", 1000, None, nu))

    async def half_claimed() -> bool:
        return await database["opdrachten"].count_documents({"status": "in_batch"}) == 2
    await eventually(half_claimed, what="two orders claimed")
    hanging.cancel()  # the process dies here, leaving the batch in opbouw
    with pytest.raises(asyncio.CancelledError):
        await hanging
    claimed = {o["aanvraag_id"] for o in await database["opdrachten"].find({"status": "in_batch"}).to_list(None)}
    assert claimed == {"X1", "X2"}

    # restarted with a configuration in which 12345678 no longer has a (valid) account
    handlers.rekeningen = Rekeningen(rekeningen.debiteur, {k: v for k, v in rekeningen.ggz.items()
                                                           if k != "12345678"})
    repo.fault = ""
    batch = await handlers.batch_aanmaken("wissel-1", 1000, None, nu)
    assert batch["status"] == "aangemaakt"
    assert (batch["aantal"], batch["control_sum_cents"]) == (1, 100_000)
    assert schema_errors(batch["pain001"].encode()) == []
    orders = {o["aanvraag_id"]: o for o in await database["opdrachten"].find({}).to_list(None)}
    assert batch["opdrachten"] == [orders["Y1"]["_id"]]
    for case in ("X1", "X2", "X3"):
        assert (orders[case]["status"], orders[case]["batch_id"]) == ("rekening_ontbreekt", None)
    # the account is back: the orders are paid in the next batch
    handlers.rekeningen = rekeningen
    volgende = await handlers.batch_aanmaken("wissel-2", 1000, None, datetime.now(UTC))
    assert (volgende["aantal"], volgende["control_sum_cents"]) == (3, 300_000)


async def test_two_concurrent_batches_never_take_the_same_order(service, driver, mongo, namespace):
    first = service("payments").start()
    second = service("payments").start()  # a second process: the claims really race
    n = 120
    commands = [await driver.send(AANMAKEN, f"C{i}", aanmaken(f"C{i}", bedrag=10_000 + i)) for i in range(n)]
    for command in commands:
        await driver.reply(command, timeout=120)

    async def request(url: str, key: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            return await http.post("/api/v1/betaalbatches", json={"maxOpdrachten": 80},
                                   headers={**BETAALBEHEER, "Idempotency-Key": key})

    a, b = await asyncio.gather(request(first.url, "A"), request(second.url, "B"))
    assert a.status_code == b.status_code == 201, (a.text, b.text)
    ids_a, ids_b = set(a.json()["opdrachten"]), set(b.json()["opdrachten"])
    assert not ids_a & ids_b
    assert len(ids_a | ids_b) == n  # 80 + 80 asked, 120 available: all taken, each once
    orders = await db(mongo, namespace)["opdrachten"].find({}).to_list(None)
    assert a.json()["controlSumCents"] + b.json()["controlSumCents"] == sum(o["netto_cents"] for o in orders)


async def test_a_recovery_past_its_five_year_bar_is_no_longer_set_off(service, driver):
    payments = service("payments").start()
    await driver.call(AANMAKEN, "V1", aanmaken("V1", kvk="41178211"))
    async with httpx.AsyncClient(base_url=payments.url, timeout=30) as http:
        await batch_boeken(http, "v1")  # the advance was paid: the excess is recovered
    oud = {**verrekenen("V1", 132_500, kvk="41178211"), "vaststellingsdatum": "2019-01-02"}
    reply = await driver.call(VERREKENEN, "V1", oud)
    assert reply.data["terugvorderenUiterlijk"] == "2024-01-02"  # before the engine's today (2026-11-23)
    later = await driver.call(AANMAKEN, "V2", aanmaken("V2", kvk="41178211", bedrag=800_000))
    assert later.data["opdrachten"][0]["verrekendCents"] == 0
    async with httpx.AsyncClient(base_url=payments.url, timeout=30) as http:
        [t] = (await http.get("/api/v1/terugvorderingen?ggz=41178211", headers=BETAALBEHEER)).json()
        ledger = (await http.get("/api/v1/grootboek/41178211", headers=BETAALBEHEER)).json()
    assert t["status"] == "verjaard" and t["openCents"] == 1_000_000
    assert ledger["openTerugvorderingen"] == []
