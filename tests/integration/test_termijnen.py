"""The legal calendar on the real stack (issue 13 item 1): intake, grants, notifications, payments and the process
engine as real processes on the real broker and FerretDB, on one rehearsal clock, running bpmn/ips_traject.bpmn.

* A beschikking sent on 2026-04-02 states an objection term that ends on Monday 2026-05-18 (6 weeks end on
  Hemelvaartsdag 14 May; 15 May is gelijkgesteld; then a weekend), in the data and in the letter.
* Received Thursday 2026-03-12 incomplete, asked for the supplement that day, supplemented Friday 2026-03-20: the
  decision term (statutory end 7 May) is suspended 13..19 March, 7 days (Awb 4:15), and ends on 14 May, which the
  Atw moves past Hemelvaartsdag, the gelijkgestelde 15 May and the weekend to Monday 18 May. The overdue timer
  fires after 18 May, not before, and a 4:14 notice must name a date after 18 May.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tests.support.ips import ROERMOND, IpsSystem, application, ggz, official, start_ips

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


@pytest.fixture
async def ips(service):
    system = start_ips(service)
    yield system
    await system.close()


def _amsterdam(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=AMSTERDAM)


async def test_a_beschikking_sent_on_2_april_2026_states_18_may_as_the_end_of_the_objection_term(ips: IpsSystem):
    await ips.set_clock(_amsterdam("2026-04-02T10:00:00"))
    case_id = await ips.submit(application(aanvraagdatum="2026-04-02"))
    roermond = official(ROERMOND)
    task = await ips.wait_task(case_id, roermond)
    done = await ips.decide(task["id"], roermond, besluit="toekennen", motivering="Voldoet aan de regeling.")
    assert done.status_code == 200, done.text
    besluit = (await ips.wait_status(case_id, "toegekend"))["besluit"]
    assert besluit["datum"] == "2026-04-02"
    assert besluit["bezwaartermijnEinde"] == "2026-05-18"  # the old calendar said 2026-05-15
    letter = await ips.letter_text(besluit["beschikkingId"])
    assert "18 mei 2026" in letter and "15 mei 2026" not in letter


async def test_a_supplement_suspends_the_decision_term_and_the_atw_moves_its_end(ips: IpsSystem):
    await ips.set_clock(_amsterdam("2026-03-12T10:00:00"))
    case_id = await ips.submit(application(aanvraagdatum="2026-03-12", modelgetrouwheid=None))
    asked = await ips.wait_status(case_id, "aanvulling_gevraagd")
    assert asked["herstel"]["uiterlijk"] == "2026-03-26"  # 14 days, a Thursday
    case = await ips.wait_case(case_id, lambda c: c["actieveElementen"] == ["ReceiveTask_aanvulling"], "the request")
    assert case["variabelen"]["beslisdatum"] == "2026-05-07"  # received 12 March + 8 weeks, a Thursday

    await ips.set_clock(_amsterdam("2026-03-20T10:00:00"))
    supplement = await ips.client.post(
        f"{ips.intake}/api/v1/aanvragen/{case_id}/aanvullingen", headers=ggz(),
        json={"modelgetrouwheid": {"certificaatnummer": "PHR-2026-7", "geldigTot": "2028-01-01"}})
    assert supplement.status_code == 200, supplement.text
    roermond = official(ROERMOND)
    first = await ips.wait_task(case_id, roermond)
    case = await ips.case(case_id)
    assert case["variabelen"]["opgeschorte_dagen"] == 7  # 13..19 March: not the day of the supplement
    assert case["variabelen"]["beslisdatum"] == "2026-05-18"  # the old rule: 7 May + 8 days = 15 May

    # a 4:14 notice is checked against that same date: 18 May itself is refused, the official gets the task back
    refused = await ips.decide(first["id"], roermond, besluit="verdagen", motivering="Advies nodig.",
                               nieuweBeslisdatum="2026-05-18")
    assert refused.status_code == 200, refused.text
    again = await _next_task(ips, case_id, roermond, first["id"])
    assert again["elementId"] == "UserTask_beoordelen"
    assert await ips.letters(case_id, "verdaging") == []

    # the overdue timer: not during 18 May (Amsterdam), but once it has passed
    await ips.set_clock(datetime(2026, 5, 18, 21, 0, tzinfo=UTC))  # 23:00 on 18 May in Amsterdam
    await asyncio.sleep(2.5)  # the engine scans its timers every second
    assert (await ips.case(case_id))["variabelen"].get("te_laat") is False
    await ips.set_clock(datetime(2026, 5, 18, 22, 0, 30, tzinfo=UTC))  # 00:00:30 on 19 May
    await ips.wait_case(case_id, lambda c: c["variabelen"].get("te_laat") is True, "the overdue flag")


async def _next_task(ips: IpsSystem, case_id: str, token: dict[str, str], previous: str,
                     timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        mine = [t for t in await ips.tasks(token) if t["zaakId"] == case_id and t["id"] != previous]
        if mine:
            return mine[0]
        if time.monotonic() > deadline:
            case = await ips.case(case_id)
            raise AssertionError(f"no new task for {case_id}: {case['actieveElementen']} {case['journaal'][-5:]}")
        await asyncio.sleep(0.2)
