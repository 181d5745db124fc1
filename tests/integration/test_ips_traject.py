"""Acceptance of issue 5 over HTTP: the trajectory after the grant on every real service, mail included.

* EPA EUR 11,325 fully advanced, started 2024-01-01, stopbericht ending 2024-06-30: under `pro_rata_months`
  (36 months) the vaststelling is EUR 1,887.50 and EUR 9,437.50 is recovered; under `full` nothing is recovered.
* CMD started 2024-02-01: planned end 2026-01-31; 13 months is refused, 12 months gives 2027-01-31, and a
  second extension is refused.
* Every beschikking sends exactly one e-mail with a PDF (a capturing SMTP server), and the report's totals equal
  the ledgers.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import time
from datetime import UTC, date, datetime
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pypdf import PdfReader

from servicekit.kalender import terugvordering_uiterlijk
from tests.support.ips import (
    GGZ_A,
    PDF,
    ROERMOND,
    UWV,
    IpsSystem,
    application,
    ggz,
    official,
    start_ips,
)
from tests.support.processes import free_port
from tests.support.tokens import bearer

ROOT = Path(__file__).resolve().parents[2]
DECIDER = ("toekenning", "afwijzing", "verlenging", "vaststelling")


class Inbox:
    """aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, inbox
    controller.stop()


def _pdf_text(message: Message) -> str:
    pdfs = [part for part in message.walk() if part.get_content_type() == "application/pdf"]
    assert len(pdfs) == 1, "one PDF letter per e-mail"
    payload = pdfs[0].get_payload(decode=True)
    assert isinstance(payload, bytes)
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(payload)).pages)


async def _grant(ips: IpsSystem, body: dict[str, Any]) -> str:
    case_id = await ips.submit(body)
    task = await ips.wait_task(case_id, official(ROERMOND, DECIDER))
    response = await ips.decide(task["id"], official(ROERMOND, DECIDER), besluit="toekennen", motivering="Akkoord.")
    assert response.status_code == 200, response.text
    await ips.wait_case(case_id, lambda c: c["actieveElementen"] == ["ReceiveTask_traject"], "a running trajectory")
    return case_id


@pytest.mark.parametrize("rule", ["pro_rata_months", "full"])
async def test_early_termination_vaststelling_and_recovery(service, smtp, tmp_path, rule):
    port, inbox = smtp
    regelingen = tmp_path / "regelingen"
    shutil.copytree(ROOT / "services" / "grants" / "regelingen", regelingen)
    config = json.loads((regelingen / "ips-gemeenten-2023.json").read_text())
    config["vaststellingsregel"] = rule
    (regelingen / "ips-gemeenten-2023.json").write_text(json.dumps(config))
    ips = start_ips(service, smtp_port=port, grants_env={"IPSFLOW_REGELINGEN_DIR": str(regelingen)})
    try:
        case_id = await _grant(ips, application(trajectType="EPA", aanvraagdatum="2023-12-01",
                                                   gewensteStartdatum="2024-01-01"))
        await _pay_the_advance(ips, 1132500)  # "fully advanced": UWV's batch is sent and booked
        stop = await ips.client.post(f"{ips.intake}/api/v1/aanvragen/{case_id}/stopberichten", headers=ggz(),
                                     json={"einddatum": "2024-06-30"})
        assert stop.status_code == 202, stop.text
        await ips.wait_case(case_id, lambda c: c["actieveElementen"] == ["ReceiveTask_eindverslag"],
                            "the wait for the beëindigingsverslag")
        report = await ips.client.post(f"{ips.intake}/api/v1/aanvragen/{case_id}/eindverslag",
                                       params={"bestandsnaam": "eindverslag.pdf"}, content=PDF,
                                       headers={**ggz(), "content-type": "application/pdf"})
        assert report.status_code == 201, report.text
        without = official(ROERMOND, ("toekenning", "afwijzing"))
        task = await ips.wait_task(case_id, without)
        assert task["elementId"] == "UserTask_vaststelling"
        refused = await ips.decide(task["id"], without, besluit="vaststellen", motivering="x")
        assert refused.status_code == 403 and "vaststelling" in refused.json()["detail"]
        done = await ips.decide(task["id"], official(ROERMOND, DECIDER), besluit="vaststellen",
                                motivering="Traject vroegtijdig beëindigd.")
        assert done.status_code == 200, done.text
        case = await ips.wait_case(case_id, lambda c: c["status"] == "completed", "settlement", timeout=120)
        expected = 188750 if rule == "pro_rata_months" else 1132500
        assert case["variabelen"]["vaststelling"]["vastgesteldCents"] == expected
        assert case["variabelen"]["verrekening"]["saldoCents"] == expected - 1132500
        aanvraag = await ips.wait_status(case_id, "vastgesteld")
        letter = await ips.letter_text(aanvraag["besluit"]["beschikkingId"])
        assert ("€ 1.887,50" if rule == "pro_rata_months" else "€ 11.325,00") in letter
        recoveries = (await ips.client.get(f"{ips.payments}/api/v1/terugvorderingen", params={"ggz": GGZ_A},
                                           headers=ggz())).json()
        if rule == "pro_rata_months":
            assert "€ 9.437,50" in letter
            assert [r["bedragCents"] for r in recoveries] == [943750]
            bar = date.fromisoformat(recoveries[0]["vaststellingsdatum"])
            # 5 years after the vaststelling, a last day on a weekend or holiday moved by the Atw
            assert recoveries[0]["terugvorderenUiterlijk"] == terugvordering_uiterlijk(bar, 5).isoformat()
        else:
            assert recoveries == []
        # one e-mail per beschikking (toekenning, vaststelling), each with its PDF letter
        deadline = time.monotonic() + 60
        while len(inbox.messages) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)  # nothing more may arrive
        subjects = sorted(m["Subject"] for m in inbox.messages)
        assert len(inbox.messages) == 2, subjects
        texts = [_pdf_text(m) for m in inbox.messages]
        assert any("11.325,00" in t for t in texts) and any("Roermond" in t for t in texts)
        # reports equal the ledgers
        periode = case["variabelen"]["reservering"]["budgetperiode"]
        year = int(periode[:4]) if periode[:4].isdigit() else date.today().year
        rapport = (await ips.client.get(f"{ips.grants}/api/v1/rapportages", params={"jaar": year},
                                        headers=UWV)).json()
        ledger = next(b for b in await ips.budgets() if b["regeling"] == "ips-gemeenten-2023"
                      and b["periode"] == periode)
        totals = next(t for t in rapport["totalen"] if t["regeling"] == "ips-gemeenten-2023"
                      and t["budgetperiode"] == periode)
        grootboek = (await ips.client.get(f"{ips.payments}/api/v1/grootboek/{GGZ_A}", headers=ggz())).json()
        print(json.dumps({"rapport": totals, "budget": ledger, "grootboek": grootboek}, indent=1))
        for key in ("vastgelegdCents", "betaaldCents", "teruggevorderdCents", "vastgesteldCents"):
            assert totals[key] == ledger[key], key
        assert totals["vastgelegdCents"] == 1132500 and totals["vastgesteldCents"] == expected
        assert totals["teruggevorderdCents"] == expected_recovery(rule)
        # the payments ledger of the ggz: what was ordered for payment and what is recovered
        assert totals["teruggevorderdCents"] == grootboek["totaal"]["teruggevorderdCents"]
        assert totals["betaaldCents"] == grootboek["totaal"]["besteldCents"] == 1132500
    finally:
        await ips.close()


async def _pay_the_advance(ips: IpsSystem, cents: int) -> None:
    uwv = bearer("betaler", "uwv", "UWV", "betaalbeheerder")
    batch = await ips.client.post(f"{ips.payments}/api/v1/betaalbatches", headers={**uwv, "Idempotency-Key": "b-1"})
    assert batch.status_code == 201, batch.text
    body = batch.json()
    assert body["controlSumCents"] == cents and body["aantal"] == 1
    xml = await ips.client.get(f"{ips.payments}/api/v1/betaalbatches/{body['batchId']}/pain001", headers=uwv)
    assert xml.status_code == 200 and b"pain.001.001.03" in xml.content
    for step in ("verzonden", "geboekt"):
        response = await ips.client.post(f"{ips.payments}/api/v1/betaalbatches/{body['batchId']}/{step}",
                                         headers=uwv)
        assert response.status_code == 200, response.text
    ledger = (await ips.client.get(f"{ips.payments}/api/v1/grootboek/{GGZ_A}", headers=uwv)).json()
    assert ledger["totaal"]["betaaldCents"] == cents


def expected_recovery(rule: str) -> int:
    return 943750 if rule == "pro_rata_months" else 0


async def test_extension_at_most_12_months_and_only_once(service):
    ips = start_ips(service)
    try:
        await ips.set_clock(datetime(2024, 3, 1, 9, tzinfo=UTC))  # the trajectory runs "now"
        case_id = await _grant(ips, application(trajectType="CMD", aanvraagdatum="2024-01-15",
                                                   gewensteStartdatum="2024-02-01"))
        assert (await ips.case(case_id))["variabelen"]["einddatum"] == "2026-01-31"

        async def ask(months: int) -> None:
            response = await ips.client.post(f"{ips.intake}/api/v1/aanvragen/{case_id}/verlengingsverzoeken",
                                             json={"maanden": months}, headers=ggz())
            assert response.status_code == 202, response.text

        await ask(13)
        refusal = await ips.wait_letter(case_id, "afwijzing_verlenging")
        assert "12" in await ips.letter_text(refusal["beschikkingId"])
        await ips.wait_case(case_id, lambda c: c["actieveElementen"] == ["ReceiveTask_traject"], "running again")
        assert (await ips.case(case_id))["variabelen"]["einddatum"] == "2026-01-31"

        await ask(12)
        task = await ips.wait_task(case_id, official(ROERMOND, DECIDER))
        assert task["elementId"] == "UserTask_verlenging"
        response = await ips.decide(task["id"], official(ROERMOND, DECIDER), besluit="toekennen",
                                    motivering="Goede voortgang, plaatsing in zicht.")
        assert response.status_code == 200, response.text
        granted = await ips.wait_letter(case_id, "verlenging")
        assert "31 januari 2027" in await ips.letter_text(granted["beschikkingId"])
        await ips.wait_case(case_id, lambda c: c["variabelen"].get("einddatum") == "2027-01-31"
                            and c["actieveElementen"] == ["ReceiveTask_traject"], "the new end date")

        await ask(3)
        await ips.wait_letter(case_id, "afwijzing_verlenging", count=2)
        case = await ips.wait_case(case_id, lambda c: c["actieveElementen"] == ["ReceiveTask_traject"], "running")
        assert case["variabelen"]["einddatum"] == "2027-01-31" and case["variabelen"]["verlengingen"] == 1
    finally:
        await ips.close()
