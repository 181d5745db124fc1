"""intake numbers complete applications (issue 14 item 4) on the real broker and FerretDB: once, when the
application becomes complete (the complete submission, the aanvulling that completes it, or the check after
an upload completed it), announced to grants without a subject, and named by the check and the withdrawal."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from tests.conftest import eventually
from tests.integration.test_intake_commands import engine  # noqa: F401  (the fixture)
from tests.integration.test_intake_http import GGZ_HEADERS, VALID, submit, upload

ANNOUNCED = "ips.aanvraag.volgnummer_toegekend.v1"


def _announced(engine_stand_in) -> dict[str, int]:
    return {e.data["aanvraagId"]: e.data["volgnummer"] for e in engine_stand_in.events if e.type == ANNOUNCED}


async def test_each_complete_application_gets_the_next_number_once(service, engine):  # noqa: F811
    intake = service("intake").start()
    first = submit(intake.url, {**VALID, "clientReferentie": "V-1"}, {**GGZ_HEADERS, "Idempotency-Key": "v-1"})
    again = submit(intake.url, {**VALID, "clientReferentie": "V-1"}, {**GGZ_HEADERS, "Idempotency-Key": "v-1"})
    second = submit(intake.url, {**VALID, "clientReferentie": "V-2"}).json()["id"]
    incomplete = submit(intake.url, {k: v for k, v in VALID.items() if k != "modelgetrouwheid"}).json()["id"]
    assert first.status_code == 201 and again.json()["id"] == first.json()["id"]

    async def two() -> bool:
        return len(_announced(engine)) == 2
    await eventually(two, what="two announcements")
    assert _announced(engine) == {first.json()["id"]: 1, second: 2}  # the retried POST took no number
    announcement = next(e for e in engine.events if e.type == ANNOUNCED)
    assert announcement.subject is None  # for grants, not a message the engine keeps in the case

    check = await engine.ask("ips.aanvraag.volledigheid_controleren.v1", second, "cmd-v-2")
    assert check.data["volledig"] is True and check.data["volgnummer"] == 2
    late = await engine.ask("ips.aanvraag.volledigheid_controleren.v1", incomplete, "cmd-v-3")
    assert late.data["volledig"] is False and late.data["volgnummer"] is None
    await engine.ask("ips.aanvraag.herstel_vragen.v1", incomplete, "cmd-herstel-v-3", datetime.now(UTC),
                     ontbrekend=late.data["ontbrekend"], hersteltermijn="P14D")
    supplement = httpx.post(f"{intake.url}/api/v1/aanvragen/{incomplete}/aanvullingen",
                            json={"modelgetrouwheid": {"certificaatnummer": "PHR-9", "geldigTot": "2027-06-30"}},
                            headers=GGZ_HEADERS, timeout=10)
    assert supplement.status_code == 200, supplement.text

    async def three() -> bool:
        return incomplete in _announced(engine)
    await eventually(three, what="the aanvulling's announcement")
    assert _announced(engine)[incomplete] == 3  # its place is the moment the aanvulling completed it
    complete = await engine.ask("ips.aanvraag.volledigheid_controleren.v1", incomplete, "cmd-v-3b")
    assert complete.data["volgnummer"] == 3

    withdrawn = httpx.post(f"{intake.url}/api/v1/aanvragen/{second}/intrekking", headers=GGZ_HEADERS, timeout=10)
    assert withdrawn.status_code == 200, withdrawn.text

    async def withdrawal() -> bool:
        return any(e.type == "ips.aanvraag.ingetrokken.v1" for e in engine.events)
    await eventually(withdrawal, what="the withdrawal")
    event = next(e for e in engine.events if e.type == "ips.aanvraag.ingetrokken.v1")
    assert event.data["volgnummer"] == 2  # grants gives the place back if the reservation was not asked yet
    assert sum(1 for e in engine.events if e.type == ANNOUNCED) == 3  # each announced exactly once


async def test_an_application_an_upload_completed_is_numbered_by_the_check(service, engine):  # noqa: F811
    intake = service("intake").start(IPSFLOW_INTAKE_VEREISTE_BIJLAGEN='["aanvraagformulier"]')
    aanvraag_id = submit(intake.url).json()["id"]
    assert upload(intake.url, aanvraag_id).status_code == 201
    check = await engine.ask("ips.aanvraag.volledigheid_controleren.v1", aanvraag_id, "cmd-u-1")
    assert check.data["volledig"] is True and check.data["volgnummer"] == 1

    async def announced() -> bool:
        return _announced(engine) == {aanvraag_id: 1}
    await eventually(announced, what="the check's announcement")
