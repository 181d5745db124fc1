"""The rehearsal clock (oefenklok, issue 12 item 6) on real services, the real broker and the real database.

"Received on 2026-03-03, overdue on 2026-04-29" rehearsed over HTTP: one setting through the engine moves intake's
receipt date, grants' decision date and beschikking date, the engine's overdue timer, notifications' letter date
and payments' batch date. Before this change only the engine followed its clock: intake stamped the real date.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pypdf import PdfReader

from servicekit.clock import CLOCK_COMMAND, EX_CONFIG, AdjustableClock, ClockKeeper, ClockState
from servicekit.envelope import new_event
from tests.support.infra import ROOT
from tests.support.ips import KLOKBEHEER, ROERMOND, IpsSystem, application, official, start_ips
from tests.support.tokens import bearer

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
UWV_BETALER = bearer("betaler", "uwv", "UWV", "betaalbeheerder")
BEHEER = bearer("beheerder", "beheer", "ipsflow", "functioneel-beheerder")


def amsterdam(moment: str) -> date:
    return datetime.fromisoformat(moment).astimezone(AMSTERDAM).date()


def at_nine(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 9, 0, tzinfo=AMSTERDAM)


async def test_received_on_3_march_overdue_on_29_april_rehearsed_over_http(service):
    ips = start_ips(service)
    try:
        await ips.set_clock(at_nine(date(2026, 3, 3)))
        for name, clock in (await ips.clocks()).items():
            assert clock["verstelbaar"] is True, name
            assert amsterdam(clock["nu"]) == date(2026, 3, 3), (name, clock)

        case_id = await ips.submit(application(aanvraagdatum="2026-03-03", gewensteStartdatum="2026-05-01"))
        aanvraag = await ips.aanvraag(case_id)
        assert amsterdam(aanvraag["ontvangenOp"]) == date(2026, 3, 3), aanvraag["ontvangenOp"]  # intake's receipt

        decider = official(ROERMOND)
        await ips.wait_task(case_id, decider)
        toetsing = (await ips.case(case_id))["variabelen"]["toetsing"]
        assert toetsing["beslisdatum"] == "2026-04-28"  # grants: receipt + 8 weeks (Awb 4:13)

        # The day before the deadline ends nothing happens; the day after, the engine's timer flags the case.
        await ips.set_clock(at_nine(date(2026, 4, 28)))
        await asyncio.sleep(2.5)  # the timer poller scans every second here
        assert (await ips.case(case_id))["variabelen"].get("te_laat") is False
        await ips.set_clock(at_nine(date(2026, 4, 29)))
        await ips.wait_case(case_id, lambda c: c["variabelen"].get("te_laat") is True, "te_laat on 2026-04-29")

        task = await ips.wait_task(case_id, decider)
        response = await ips.decide(task["id"], decider, besluit="toekennen", motivering="Akkoord, laat maar wel.")
        assert response.status_code == 200, response.text
        granted = await ips.wait_status(case_id, "toegekend")
        assert granted["besluit"]["datum"] == "2026-04-29"  # grants' beschikking date, stored by intake
        await ips.wait_case(case_id, lambda c: c["actieveElementen"] == ["ReceiveTask_traject"], "the trajectory")

        letter = await _letter_text(ips, case_id)
        assert "29 april 2026" in letter  # notifications' letter date

        batch = await ips.client.post(f"{ips.payments}/api/v1/betaalbatches",
                                      headers={**UWV_BETALER, "Idempotency-Key": f"oefen-{case_id}"})
        assert batch.status_code == 201, batch.text
        assert batch.json()["uitvoerdatum"] == "2026-04-29"  # payments' default execution date: its "today"
        assert amsterdam(batch.json()["aangemaaktOp"]) == date(2026, 4, 29)
        xml = await ips.client.get(f"{ips.payments}/api/v1/betaalbatches/{batch.json()['batchId']}/pain001",
                                   headers=UWV_BETALER)
        assert b"<ReqdExctnDt>2026-04-29</ReqdExctnDt>" in xml.content
    finally:
        await ips.close()


async def _letter_text(ips: IpsSystem, case_id: str, timeout: float = 60) -> str:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        log = await ips.client.get(f"{ips.notifications}/api/v1/berichten", params={"aanvraagId": case_id},
                                   headers=BEHEER)
        assert log.status_code == 200, log.text
        toekenning = [b for b in log.json() if b["soort"] == "toekenning"]
        if toekenning:
            pdf = await ips.client.get(f"{ips.notifications}/api/v1/berichten/{toekenning[0]['id']}/pdf",
                                       headers=BEHEER)
            assert pdf.status_code == 200, pdf.text
            return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no toekenning letter for {case_id}: {log.json()}")
        await asyncio.sleep(0.25)


async def test_every_process_follows_a_restart_keeps_it_and_reset_returns_to_real_time(service):
    engine = service("process_engine", IPSFLOW_ADJUSTABLE_CLOCK="true").start()
    # Two intake processes share one queue: one takes the broadcast, the other reads the stored setting.
    intakes = [service("intake", IPSFLOW_ADJUSTABLE_CLOCK="true").start() for _ in range(2)]
    async with httpx.AsyncClient(timeout=30) as client:
        async def offsets() -> list[float]:
            return [float((await client.get(f"{p.url}/api/v1/beheer/klok", headers=KLOKBEHEER)).json()
                          ["verschuivingSeconden"]) for p in intakes]

        moved = await client.put(f"{engine.url}/api/v1/beheer/klok", headers=KLOKBEHEER,
                                 json={"nu": (datetime.now(UTC) + timedelta(days=57)).isoformat()})
        assert moved.status_code == 200, moved.text
        offset = moved.json()["verschuivingSeconden"]
        assert abs(offset - 57 * 86400) < 5
        await _until(lambda: offsets(), lambda found: all(abs(o - offset) < 1 for o in found), "both intakes")

        intakes[0].stop()
        intakes[0].start()
        assert abs((await offsets())[0] - offset) < 1, "the setting is kept in intake's own database"
        engine.stop()
        engine.start()
        shown = (await client.get(f"{engine.url}/api/v1/beheer/klok", headers=KLOKBEHEER)).json()
        assert abs(shown["verschuivingSeconden"] - offset) < 1, "and in the engine's"

        reset = await client.delete(f"{engine.url}/api/v1/beheer/klok", headers=KLOKBEHEER)
        assert reset.status_code == 200 and reset.json()["verschuivingSeconden"] == 0, reset.text
        await _until(lambda: offsets(), lambda found: found == [0.0, 0.0], "both intakes back on real time")


async def _until(read: Any, ok: Any, what: str, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    found = None
    while asyncio.get_running_loop().time() < deadline:
        found = await read()
        if ok(found):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: still {found}")


async def test_a_service_on_real_time_shows_it_and_the_engine_refuses_to_move(service):
    engine = service("process_engine").start()
    async with httpx.AsyncClient(timeout=30) as client:
        shown = await client.get(f"{engine.url}/api/v1/beheer/klok", headers=KLOKBEHEER)
        assert shown.status_code == 200 and shown.json()["verstelbaar"] is False
        assert abs(datetime.fromisoformat(shown.json()["nu"]) - datetime.now(UTC)) < timedelta(seconds=30)
        refused = await client.put(f"{engine.url}/api/v1/beheer/klok", headers=KLOKBEHEER,
                                   json={"nu": "2026-03-03T09:00:00+01:00"})
        assert refused.status_code == 409, refused.text
        ggz = bearer("medewerker", "ggz", "12345678", "aanvrager")
        assert (await client.get(f"{engine.url}/api/v1/beheer/klok", headers=ggz)).status_code == 403


@pytest.mark.parametrize("package", ["intake", "grants", "payments", "notifications", "process_engine"])
def test_an_adjustable_clock_in_production_refuses_to_start(infra, namespace, tmp_path, package):
    env = {"PYTHONPATH": f"{ROOT / 'services'}", "PATH": "/usr/bin:/bin", "IPSFLOW_AMQP_URL": infra.amqp_url,
           "IPSFLOW_MONGO_URL": infra.mongo_url, "IPSFLOW_NAMESPACE": namespace,
           "IPSFLOW_ADJUSTABLE_CLOCK": "true", "IPSFLOW_ENVIRONMENT": "production"}
    done = subprocess.run([sys.executable, "-m", package], env=env, cwd=ROOT, capture_output=True, timeout=60,
                          check=False)
    assert done.returncode == EX_CONFIG, done.stderr[-2000:]
    assert b'"service.refused"' in done.stderr and b"adjustable_clock" in done.stderr


async def test_a_late_older_setting_never_overrides_a_newer_one(mongo, namespace):
    database = mongo[f"{namespace}ipsflow_intake".replace(".", "_")]
    clock = AdjustableClock()
    keeper = ClockKeeper(database, clock, "intake")
    now = datetime.now(UTC)
    older = ClockState(timedelta(days=10), now - timedelta(minutes=1))
    newer = ClockState(timedelta(days=20), now)
    for state in (newer, older, newer):  # the newer one, then a retried older one, then a redelivery
        await keeper.handle(new_event(CLOCK_COMMAND, service="process_engine", subject=None,
                                      data=state.to_data(now + state.offset)))
    assert clock.state.offset == timedelta(days=20)
    other_process = AdjustableClock()
    await ClockKeeper(database, other_process, "intake").load()
    assert other_process.state.offset == timedelta(days=20), "the stored setting is the newer one"


def test_ipsflow_klok_set_moves_every_service_and_reset_brings_them_back(service, monkeypatch):
    from typer.testing import CliRunner

    from ipsflow_cli.main import app

    ips = start_ips(service)
    try:
        for name, url in ips.urls().items():
            var = "IPSFLOW_ENGINE_URL" if name == "process_engine" else f"IPSFLOW_{name.upper()}_URL"
            monkeypatch.setenv(var, url)
        monkeypatch.setenv("IPSFLOW_TOKEN", KLOKBEHEER["Authorization"].removeprefix("Bearer "))
        runner = CliRunner()
        moved = runner.invoke(app, ["klok", "set", "2026-03-03"])
        assert moved.exit_code == 0, moved.output
        assert "alle services werken met dezelfde tijd" in moved.output
        clocks = [httpx.get(f"{url}/api/v1/beheer/klok", headers=KLOKBEHEER).json() for url in ips.urls().values()]
        assert {amsterdam(c["nu"]) for c in clocks} == {date(2026, 3, 3)}, clocks
        back = runner.invoke(app, ["klok", "reset"])
        assert back.exit_code == 0, back.output
        assert {httpx.get(f"{url}/api/v1/beheer/klok", headers=KLOKBEHEER).json()["verschuivingSeconden"]
                for url in ips.urls().values()} == {0.0}
    finally:
        asyncio.run(ips.close())
