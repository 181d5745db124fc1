"""The portal contract (issue 13.3) on the real stack: every service a real process on the real broker and
database, bpmn/ips_traject.bpmn, one rehearsal clock.

* intake's application resource: the decision date with its Awb reason (4:13, 4:15 suspension, 4:14 notice), the
  overdue flag, the decision with its beschikking id and grounds, the planned trajectory dates;
* the engine's work list filtered by case, tasks with receipt date and deadline;
* a ggz lists its own messages and letters; the forwarding gemeente keeps its record and is copied;
* a delayed replay of POST /aanvragen answers the original 201 and body.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.support.ips import GGZ_A, GGZ_B, ROERMOND, UWV, WEERT, IpsSystem, application, ggz, official, start_ips

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def _amsterdam(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=AMSTERDAM)


@pytest.fixture
async def ips(service):
    system = start_ips(service)
    yield system
    await system.close()


async def _until(what: str, probe: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


async def _tasks(ips: IpsSystem, token: dict[str, str], **params: str) -> list[dict[str, Any]]:
    response = await ips.client.get(f"{ips.engine}/api/v1/taken", headers=token, params=params)
    assert response.status_code == 200, response.text
    return list(response.json())


async def _berichten(ips: IpsSystem, token: dict[str, str]) -> list[dict[str, Any]]:
    response = await ips.client.get(f"{ips.notifications}/api/v1/berichten", headers=token)
    assert response.status_code == 200, response.text
    return list(response.json())


async def test_decision_date_reasons_overdue_decision_and_trajectory_as_typed_fields(ips: IpsSystem):
    roermond = official(ROERMOND)
    await ips.set_clock(_amsterdam("2026-03-12T10:00:00"))
    case_id = await ips.submit(application(aanvraagdatum="2026-03-12", modelgetrouwheid=None))
    other = await ips.submit(application(aanvraagdatum="2026-03-12"))
    asked = await ips.wait_status(case_id, "aanvulling_gevraagd")
    assert asked["beslistermijn"] == {"beslisdatum": "2026-05-07", "reden": "beslistermijn_awb_4_13",
                                      "oorspronkelijkeBeslisdatum": "2026-05-07", "opgeschorteDagen": 0,
                                      "teLaat": False}

    # Awb 4:15: the supplement on 20 March suspended the term for 7 days; the Atw moves 15 May to 18 May
    await ips.set_clock(_amsterdam("2026-03-20T10:00:00"))
    supplement = await ips.client.post(
        f"{ips.intake}/api/v1/aanvragen/{case_id}/aanvullingen", headers=ggz(),
        json={"modelgetrouwheid": {"certificaatnummer": "PHR-2026-7", "geldigTot": "2028-01-01"}})
    assert supplement.status_code == 200, supplement.text
    task = await ips.wait_task(case_id, roermond)
    await ips.wait_task(other, roermond)
    termijn = (await ips.aanvraag(case_id))["beslistermijn"]
    assert termijn == {"beslisdatum": "2026-05-18", "reden": "opschorting_awb_4_15",
                       "oorspronkelijkeBeslisdatum": "2026-05-07", "opgeschorteDagen": 7, "teLaat": False}

    # the work list of one case, with the receipt date and the deadline
    assert {t["zaakId"] for t in await _tasks(ips, roermond)} >= {case_id, other}
    (only,) = await _tasks(ips, roermond, zaak=case_id)
    received = (await ips.aanvraag(case_id))["ontvangenOp"]
    assert only["id"] == task["id"] and only["beslisdatum"] == "2026-05-18" and only["teLaat"] is False
    assert datetime.fromisoformat(only["ontvangenOp"]) == datetime.fromisoformat(received)
    assert await _tasks(ips, official(WEERT), zaak=case_id) == []  # the filter does not widen who sees what

    # Awb 4:14: a notice of a new date
    done = await ips.decide(task["id"], roermond, besluit="verdagen", motivering="Advies nodig.",
                            nieuweBeslisdatum="2026-06-15")
    assert done.status_code == 200, done.text
    await ips.wait_letter(case_id, "verdaging")
    termijn = (await ips.aanvraag(case_id))["beslistermijn"]
    assert (termijn["beslisdatum"], termijn["reden"], termijn["oorspronkelijkeBeslisdatum"]) == (
        "2026-06-15", "verdaging_awb_4_14", "2026-05-07")

    # overdue: the other application passed 7 May without a decision; the postponed one did not
    await ips.set_clock(_amsterdam("2026-05-08T10:00:00"))
    assert (await ips.aanvraag(other))["beslistermijn"]["teLaat"] is True
    assert (await ips.aanvraag(case_id))["beslistermijn"]["teLaat"] is False
    listed = {a["id"]: a for a in (await ips.client.get(f"{ips.intake}/api/v1/aanvragen", headers=ggz())).json()[
        "items"]}
    assert (listed[other]["beslisdatum"], listed[other]["teLaat"]) == ("2026-05-07", True)
    await _until("the engine's overdue flag on the task", lambda: _flagged(ips, roermond, other))

    # the decision as data: the beschikking id, the grounds of a refusal, the planned trajectory
    task = await ips.wait_task(case_id, roermond)
    assert (await ips.decide(task["id"], roermond, besluit="toekennen", motivering="Voldoet.")).status_code == 200
    granted = await ips.wait_status(case_id, "toegekend")
    assert granted["besluit"]["soort"] == "toekenning" and granted["besluit"]["beschikkingId"]
    assert granted["besluit"]["brief"] == f"/api/v1/brieven/{granted['besluit']['beschikkingId']}"
    assert granted["traject"] == {"startdatum": "2026-07-01", "einddatum": "2028-06-30"}  # CMD: 24 months
    assert granted["beslistermijn"]["teLaat"] is False
    task = await ips.wait_task(other, roermond)
    reason = "Geen wens tot betaald werk gebleken."
    assert (await ips.decide(task["id"], roermond, besluit="afwijzen", motivering=reason)).status_code == 200
    refused = await ips.wait_status(other, "afgewezen")
    assert refused["besluit"]["gronden"] == [{"code": "inhoudelijke_beoordeling", "tekst": reason}]
    assert refused["beslistermijn"]["teLaat"] is True  # decided after its decision date
    listed = {a["id"]: a for a in (await ips.client.get(f"{ips.intake}/api/v1/aanvragen", headers=ggz())).json()[
        "items"]}
    assert listed[case_id]["beschikkingId"] == granted["besluit"]["beschikkingId"]
    assert listed[case_id]["einddatum"] == "2028-06-30"

    # a ggz lists its own messages and letters, another ggz none of them, UWV is refused
    mine = await _until("the ggz's messages", lambda: _own_letters(ips, ggz(GGZ_A), {case_id, other}, 3))
    assert {b["beschikkingId"] for b in mine} >= {granted["besluit"]["beschikkingId"],
                                                   refused["besluit"]["beschikkingId"]}
    assert {b["aanvraagId"] for b in await _berichten(ips, ggz(GGZ_B))}.isdisjoint({case_id, other})
    uwv = await ips.client.get(f"{ips.notifications}/api/v1/berichten", headers=UWV)
    assert uwv.status_code == 403


async def _flagged(ips: IpsSystem, token: dict[str, str], case_id: str) -> bool:
    return any(t["teLaat"] is True for t in await _tasks(ips, token, zaak=case_id))


async def _own_letters(ips: IpsSystem, token: dict[str, str], cases: set[str], count: int) -> list[dict[str, Any]]:
    found = [b for b in await _berichten(ips, token) if b["aanvraagId"] in cases]
    return found if len(found) >= count else []


async def test_forwarding_gemeente_keeps_its_record_and_is_copied_and_a_replay_gets_the_original_answer(
        ips: IpsSystem):
    headers = {**ggz(), "Idempotency-Key": "portaal-doorzending-1"}
    body = application(gemeenteCode=ROERMOND, woongemeenteCode=WEERT)
    first = await ips.client.post(f"{ips.intake}/api/v1/aanvragen", json=body, headers=headers)
    assert first.status_code == 201, first.text
    case_id = first.json()["id"]
    weert, roermond = official(WEERT), official(ROERMOND)
    await ips.wait_task(case_id, weert)  # forwarded to the competent gemeente

    # a delayed replay: the original answer, not the application as it is now (forwarded, in another gemeente)
    replay = await ips.client.post(f"{ips.intake}/api/v1/aanvragen", json=body, headers=headers)
    assert replay.status_code == 201 and replay.json() == first.json(), replay.text
    assert replay.json()["gemeenteCode"] == ROERMOND and replay.json()["status"] == "ingediend"
    assert replay.headers["Idempotency-Replayed"] == "true"
    assert (await ips.aanvraag(case_id))["gemeenteCode"] == WEERT

    # Roermond keeps its own record: that it forwarded the application, to whom, and the notice
    record = await ips.client.get(f"{ips.intake}/api/v1/aanvragen/{case_id}", headers=roermond)
    assert record.status_code == 200, record.text
    seen = record.json()
    assert (seen["status"], seen["doorgezondenNaar"], seen["doorgezondenVan"]) == ("doorgezonden", WEERT, ROERMOND)
    assert [b["soort"] for b in seen["beschikkingen"]] == ["doorzending"]
    assert "clientReferentie" not in seen and seen["documenten"] == []
    listed = await ips.client.get(f"{ips.intake}/api/v1/aanvragen", headers=roermond)
    assert {a["id"]: a["status"] for a in listed.json()["items"]}[case_id] == "doorgezonden"
    documents = await ips.client.get(f"{ips.intake}/api/v1/aanvragen/{case_id}/documenten/x", headers=roermond)
    assert documents.status_code == 403

    # and is copied on the notice (CC), which it may read at its one copy
    notice_id = seen["beschikkingen"][0]["beschikkingId"]
    await ips.letter_text(notice_id, token=roermond)
    assert (await ips.client.get(f"{ips.notifications}/api/v1/brieven/{notice_id}", headers=weert)).status_code == 200
    copied = await _until("the notice in Roermond's messages", lambda: _notice(ips, roermond, notice_id))
    assert len(copied["cc"]) == 2 and len(copied["aan"]) == 1  # both gemeenten in CC, the ggz addressed

    # what the competent gemeente decides later is not part of Roermond's record
    task = await ips.wait_task(case_id, weert)
    assert (await ips.decide(task["id"], weert, besluit="afwijzen", motivering="Niet passend.")).status_code == 200
    await ips.wait_status(case_id, "afgewezen")
    later = (await ips.client.get(f"{ips.intake}/api/v1/aanvragen/{case_id}", headers=roermond)).json()
    assert later["status"] == "doorgezonden" and "besluit" not in later
    assert [b["soort"] for b in later["beschikkingen"]] == ["doorzending"]


async def _notice(ips: IpsSystem, token: dict[str, str], beschikking_id: str) -> dict[str, Any] | None:
    return next((b for b in await _berichten(ips, token) if b["beschikkingId"] == beschikking_id), None)
