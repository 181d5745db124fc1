"""The process engine as its own process on the real broker and database, driven by the test BPMN."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from servicekit.broker import EVENTS, Broker
from servicekit.envelope import new_event
from tests.conftest import eventually
from tests.support.fake_services import FakeServices, succeed
from tests.support.tokens import ADMIN, BEHEER_ZONDER_ROL, FUNCTIONEEL_BEHEERDER, PROCESBEHEERDER, bearer

BPMN_DIR = str(Path(__file__).resolve().parents[1] / "bpmn")
START, CONFIRMED = "ips.test.gestart.v1", "ips.test.bevestigd.v1"
LARGE, SMALL = 700_000, 120_000
USER = bearer("behandelaar-1", "gemeente", "0957", "behandelaar")
OTHER = bearer("iemand-anders", "gemeente", "0957", "behandelaar")
WEERT = bearer("weert-1", "gemeente", "0988", "behandelaar")


@pytest.fixture
async def broker(settings_for):
    b = Broker(settings_for("test-driver"))
    await b.connect()
    yield b
    await b.close()


@pytest.fixture
def engine(service):
    return service("process_engine").start(IPSFLOW_BPMN_DIR=BPMN_DIR, IPSFLOW_CATALOGUE_FILE="")


async def _publish(broker: Broker, type_: str, case: str, data: dict) -> None:
    await broker.publish(new_event(type_, service="test", subject=case, data=data), EVENTS)


async def _case(engine, case_id: str) -> dict:
    response = httpx.get(f"{engine.url}/api/v1/zaken/{case_id}", headers=ADMIN, timeout=10)
    return response.json() if response.status_code == 200 else {}


async def test_test_process_runs_end_to_end_with_kept_message_timer_user_task_and_parallel(engine, broker):
    fake = FakeServices(broker)
    await fake.start()
    # The confirmation arrives before the case waits for it (even before it exists): it must be kept.
    await _publish(broker, START, "zaak-e2e", {"aanvraag_id": "A-1", "bedrag": LARGE, "gemeenteCode": "0957"})
    await fake.wait_for("ips.test.registreer.v1")

    async def timer_waiting() -> bool:
        return (await _case(engine, "zaak-e2e")).get("actieveElementen") == ["Task_bevestiging"]
    await eventually(timer_waiting, what="the receive task")
    await _publish(broker, CONFIRMED, "zaak-e2e", {"bevestigd": True})

    async def user_task_ready() -> bool:
        return bool((await _case(engine, "zaak-e2e")).get("taken"))
    await eventually(user_task_ready, timeout=20, what="the user task after the 2 s timer")
    case = await _case(engine, "zaak-e2e")
    fired = next(j for j in case["journaal"] if j["what"] == "timer afgegaan")
    lateness = (datetime.fromisoformat(fired["at"]) - datetime.fromisoformat(fired["due"])).total_seconds()
    assert 0 <= lateness < 1.0, f"timer fired {lateness:.3f}s after its due time"

    listed = httpx.get(f"{engine.url}/api/v1/taken", params={"lane": "Behandelaar"}, headers=USER, timeout=10).json()
    [task] = [t for t in listed if t["zaakId"] == "zaak-e2e"]
    detail = httpx.get(f"{engine.url}/api/v1/taken/{task['id']}", headers=USER, timeout=10).json()
    assert detail["formulier"]["required"] == ["akkoord", "toelichting"]
    assert httpx.get(f"{engine.url}/api/v1/taken", params={"lane": "Systeem"}, headers=USER, timeout=10).json() == []
    # the lane names the role: a caller without it sees nothing and may not open the task
    clerk = bearer("baliemedewerker", "gemeente", "0957", "balie")
    assert httpx.get(f"{engine.url}/api/v1/taken", headers=clerk, timeout=10).json() == []
    assert httpx.get(f"{engine.url}/api/v1/taken/{task['id']}", headers=clerk, timeout=10).status_code == 403
    assert httpx.get(f"{engine.url}/api/v1/taken", timeout=10).status_code == 401

    bad = httpx.post(f"{engine.url}/api/v1/taken/{task['id']}/afronden", headers=USER, timeout=10,
                     json={"gegevens": {"akkoord": "ja"}})
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    assert {p["name"] for p in bad.json()["invalidParams"]} >= {"akkoord", "toelichting"}

    claimed = httpx.post(f"{engine.url}/api/v1/taken/{task['id']}/claimen", headers=USER, timeout=10)
    assert claimed.json()["geclaimdDoor"] == "behandelaar-1"
    other = httpx.post(f"{engine.url}/api/v1/taken/{task['id']}/afronden", timeout=10, headers=OTHER,
                       json={"gegevens": {"akkoord": True, "toelichting": "ok"}})
    assert other.status_code == 409
    # Regression: another official of the gemeente could release a colleague's task, claim it and complete it.
    released = httpx.post(f"{engine.url}/api/v1/taken/{task['id']}/vrijgeven", headers=OTHER, timeout=10)
    assert released.status_code == 409, released.text
    assert released.headers["content-type"] == "application/problem+json"
    assert "behandelaar-1" not in released.text  # who claimed it is not the other official's business
    assert httpx.post(f"{engine.url}/api/v1/taken/{task['id']}/claimen", headers=OTHER, timeout=10).status_code == 409
    still = httpx.get(f"{engine.url}/api/v1/taken/{task['id']}", headers=USER, timeout=10).json()
    assert still["geclaimdDoor"] == "behandelaar-1"
    # the claimant may release and claim again
    assert httpx.post(f"{engine.url}/api/v1/taken/{task['id']}/vrijgeven", headers=USER,
                      timeout=10).json()["geclaimdDoor"] is None
    assert httpx.post(f"{engine.url}/api/v1/taken/{task['id']}/claimen", headers=USER,
                      timeout=10).json()["geclaimdDoor"] == "behandelaar-1"
    done = httpx.post(f"{engine.url}/api/v1/taken/{task['id']}/afronden", headers=USER, timeout=10,
                      json={"gegevens": {"akkoord": True, "toelichting": "Akkoord", "toegekend_bedrag": 650_000}})
    assert done.status_code == 200, done.text

    async def completed() -> bool:
        return (await _case(engine, "zaak-e2e")).get("status") == "completed"
    try:
        await eventually(completed, what="the case to complete")
    finally:
        case = await _case(engine, "zaak-e2e")
        print({k: case.get(k) for k in ("status", "actieveElementen", "incidenten", "journaal")}, dict(fake.by_type))
    assert any(j["what"] == "taak afgerond" and j["by"] == "behandelaar-1" for j in case["journaal"])
    assert [h["elementId"] for h in case["geschiedenis"]][:3] == ["StartEvent_gestart", "Task_registreer",
                                                                  "Task_bevestiging"]
    assert fake.by_type == {"ips.test.registreer.v1": 1, "ips.test.beschikking.v1": 1, "ips.test.betaling.v1": 1}
    assert all(n >= 1 for n in fake.received.values())
    await fake.stop()


async def test_failed_command_goes_to_error_boundary_or_becomes_a_retryable_incident(engine, broker):
    codes = {"zaak-boundary": "IPS-REG-001", "zaak-incident": "ONVERWACHT"}
    attempts: dict[str, int] = {}

    def reply(event):
        attempts[event.subject] = attempts.get(event.subject, 0) + 1
        if event.type == "ips.test.registreer.v1" and attempts[event.subject] == 1:
            return "ips.opdracht.mislukt.v1", {"code": codes[event.subject], "message": "register niet bereikbaar"}
        return succeed(event)

    fake = FakeServices(broker, reply=reply)
    await fake.start()
    for case_id in codes:
        await _publish(broker, START, case_id, {"aanvraag_id": case_id, "bedrag": SMALL})

    async def boundary_taken() -> bool:
        case = await _case(engine, "zaak-boundary")
        return any("error boundary" in j["what"] for j in case.get("journaal", []))
    await eventually(boundary_taken, what="the error boundary path")

    async def incident_open() -> bool:
        return bool((await _case(engine, "zaak-incident")).get("incidenten"))
    await eventually(incident_open, what="the incident")
    [incident] = (await _case(engine, "zaak-incident"))["incidenten"]
    assert incident["errorCode"] == "ONVERWACHT" and incident["elementId"] == "Task_registreer"
    for not_allowed in (USER, BEHEER_ZONDER_ROL, PROCESBEHEERDER):  # retrying is the functioneel-beheerder's
        refused = httpx.post(f"{engine.url}/api/v1/zaken/zaak-incident/incidenten/{incident['commandId']}/opnieuw",
                             headers=not_allowed, timeout=10)
        assert refused.status_code == 403, refused.text
    assert "functioneel-beheerder" in refused.json()["detail"]
    assert (await _case(engine, "zaak-incident"))["incidenten"][0].get("resolved") is not True
    cli_env = {"IPSFLOW_ENGINE_URL": engine.url, "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    shown = subprocess.run([sys.executable, "-m", "ipsflow_cli.main", "zaak", "show", "zaak-incident"],
                           capture_output=True, text=True, env=cli_env, timeout=60, check=False)
    assert incident["commandId"] in shown.stdout and "ONVERWACHT" in shown.stdout, shown.stdout + shown.stderr
    retried = subprocess.run([sys.executable, "-m", "ipsflow_cli.main", "zaak", "retry", "zaak-incident",
                              incident["commandId"]], capture_output=True, text=True, env=cli_env, timeout=60,
                             check=False)
    assert retried.returncode == 0 and "opnieuw uitgezet" in retried.stdout, retried.stdout + retried.stderr

    async def waiting_for_confirmation() -> bool:
        return (await _case(engine, "zaak-incident")).get("actieveElementen") == ["Task_bevestiging"]
    await eventually(waiting_for_confirmation, what="the retried command to be answered")
    assert fake.by_type["ips.test.registreer.v1"] == 3  # boundary case once, incident case twice (attempt 2)
    await fake.stop()


def test_deploy_refuses_unsafe_scripts_with_problem_pointing_at_the_element(engine):
    source = (Path(BPMN_DIR) / "test_process.bpmn").read_text()
    dmn = (Path(BPMN_DIR) / "test_decision.dmn").read_text()
    for evil in ("import os", "().__class__.__base__.__subclasses__()", "while True: pass"):
        bpmn = source.replace('besluit == "handmatig"', evil.replace('"', "&quot;"))
        response = httpx.post(f"{engine.url}/api/v1/procesdefinities", headers=PROCESBEHEERDER, timeout=30,
                              json={"bestanden": {"p.bpmn": bpmn, "d.dmn": dmn}})
        assert response.status_code == 400, evil
        assert response.headers["content-type"] == "application/problem+json"
        names = [p["name"] for p in response.json()["invalidParams"]]
        assert any(n.startswith("Flow_") for n in names), (evil, response.json())
    for not_allowed in (USER, BEHEER_ZONDER_ROL, FUNCTIONEEL_BEHEERDER):  # deploying is the procesbeheerder's
        assert httpx.post(f"{engine.url}/api/v1/procesdefinities", headers=not_allowed, timeout=30,
                          json={"bestanden": {"p.bpmn": source, "d.dmn": dmn}}).status_code == 403
    broken = httpx.post(f"{engine.url}/api/v1/procesdefinities", headers=ADMIN, timeout=30,
                        json={"bestanden": {"p.bpmn": "<bpmn:definitions", "d.dmn": dmn}})
    assert broken.status_code == 400


async def test_a_case_of_one_gemeente_is_invisible_to_another(engine, broker):
    fake = FakeServices(broker)
    await fake.start()
    await _publish(broker, START, "zaak-roermond", {"aanvraag_id": "R-1", "bedrag": LARGE, "gemeenteCode": "0957"})
    await _publish(broker, CONFIRMED, "zaak-roermond", {"bevestigd": True})

    async def task_ready() -> bool:
        return bool((await _case(engine, "zaak-roermond")).get("taken"))
    await eventually(task_ready, timeout=20, what="the assessment task")
    [task] = (await _case(engine, "zaak-roermond"))["taken"]
    assert [t["id"] for t in httpx.get(f"{engine.url}/api/v1/taken", headers=USER, timeout=10).json()] == [task["id"]]
    assert httpx.get(f"{engine.url}/api/v1/taken", headers=WEERT, timeout=10).json() == []
    assert httpx.get(f"{engine.url}/api/v1/taken/{task['id']}", headers=WEERT, timeout=10).status_code == 403
    refused = httpx.post(f"{engine.url}/api/v1/taken/{task['id']}/afronden", headers=WEERT, timeout=10,
                         json={"gegevens": {"akkoord": True, "toelichting": "x"}})
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
    assert httpx.get(f"{engine.url}/api/v1/zaken/zaak-roermond", headers=WEERT, timeout=10).status_code == 403
    await fake.stop()


async def test_beheer_reads_a_case_but_cancelling_needs_the_role_and_tasks_are_not_beheer_work(engine, broker):
    fake = FakeServices(broker)
    await fake.start()
    await _publish(broker, START, "zaak-beheer", {"aanvraag_id": "B-1", "bedrag": LARGE, "gemeenteCode": "0957"})
    await _publish(broker, CONFIRMED, "zaak-beheer", {"bevestigd": True})

    async def task_ready() -> bool:
        return bool((await _case(engine, "zaak-beheer")).get("taken"))
    await eventually(task_ready, timeout=20, what="the assessment task")
    [task] = (await _case(engine, "zaak-beheer"))["taken"]
    # Reading stays org_type based: beheer without any role sees the case and the task.
    for path in ("zaken/zaak-beheer", f"taken/{task['id']}"):
        assert httpx.get(f"{engine.url}/api/v1/{path}", headers=BEHEER_ZONDER_ROL, timeout=10).status_code == 200
    # Working on a task is the gemeente's, whatever roles and mandates a beheer token claims.
    posing = bearer("beheer-als-behandelaar", "beheer", "ipsflow", "behandelaar", "functioneel-beheerder",
                    mandates=("toekenning", "afwijzing"))
    for action, body in (("claimen", None), ("vrijgeven", None),
                         ("afronden", {"gegevens": {"akkoord": True, "toelichting": "x"}})):
        refused = httpx.post(f"{engine.url}/api/v1/taken/{task['id']}/{action}", headers=posing, json=body,
                             timeout=10)
        assert refused.status_code == 403, (action, refused.text)
    for not_allowed in (USER, BEHEER_ZONDER_ROL, PROCESBEHEERDER):
        refused = httpx.post(f"{engine.url}/api/v1/zaken/zaak-beheer/annuleren", headers=not_allowed, timeout=10)
        assert refused.status_code == 403, refused.text
    assert (await _case(engine, "zaak-beheer"))["status"] == "running"
    cancelled = httpx.post(f"{engine.url}/api/v1/zaken/zaak-beheer/annuleren", headers=FUNCTIONEEL_BEHEERDER,
                           timeout=10)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] != "running"
    await fake.stop()
