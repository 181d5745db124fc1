"""The console's incident, queue and definition pages in headless Chromium (Debian's) on the real stack, end to end:

- a case stopped by a failing service shows as an incident on its element; after the service is fixed, retrying
  the incident group from the console moves every case on and the console reports each resolved;
- a message parked in the engine's dead-letter queue is replayed from the console and applied exactly once;
- the definition view shows per-element badges; the bpmn.io watermark stays visible and uncovered
  (``elementFromPoint``) on every diagram;
- a viewer sees no retry, replay or purge buttons and gets 403 when posting anyway;
- no console errors or failed requests, axe-core (WCAG 2.1 AA) finds nothing serious or critical.

Screenshots of each page go to ``IPSFLOW_CONSOLE_SCREENSHOTS`` when set (the README's come from there), else to the
test's tmp dir; the folder is printed.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, Page

from servicekit.broker import EVENTS, Broker
from servicekit.envelope import new_event
from tests.browser.test_console import _axe, _watch, browser  # noqa: F401 (the module's browser fixture)
from tests.support.console import bpmn_dir_with_test_process
from tests.support.fake_services import FakeServices, succeed
from tests.support.tokens import ADMIN

T = TypeVar("T")
DLQ_CASE = "zaak-dlq-browser"
GROUP = ["zaak-incident-1", "zaak-incident-2"]


class Background:
    """An event loop in a thread of its own for the broker and the fake services (Playwright's sync API runs a
    loop on the test's thread)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _case(engine_url: str, case_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{engine_url}/api/v1/zaken/{case_id}", headers=ADMIN, timeout=10)
    return answer.json() if answer.status_code == 200 else {}  # type: ignore[no-any-return]


@pytest.fixture
def stack(service: Any, settings_for: Any, tmp_path: Path) -> Iterator[tuple[Any, Any, dict[str, bool], Background]]:
    engine = service("process_engine").start(IPSFLOW_BPMN_DIR=bpmn_dir_with_test_process(tmp_path),
                                             IPSFLOW_CATALOGUE_FILE="")
    notifications = service("notifications").start()
    console = service("console").start(IPSFLOW_CONSOLE_ENGINE_URL=engine.url,
                                       IPSFLOW_CONSOLE_NOTIFICATIONS_URL=notifications.url)
    broken = {"register": True}

    def reply(event: Any) -> tuple[str, dict[str, Any]] | None:
        if event.type == "ips.test.registreer.v1" and broken["register"] and event.subject in GROUP:
            return "ips.opdracht.mislukt.v1", {"code": "ONVERWACHT", "message": "register niet bereikbaar"}
        return succeed(event)

    background = Background()
    broker = Broker(settings_for("test-driver"))
    background.run(broker.connect())
    fake = FakeServices(broker, reply=reply)
    background.run(fake.start())
    background.loop.broker = broker  # type: ignore[attr-defined]
    try:
        yield engine, console, broken, background
    finally:
        background.run(fake.stop())
        background.run(broker.close())
        background.stop()


def _publish(background: Background, type_: str, case_id: str, data: dict[str, Any]) -> None:
    broker: Broker = background.loop.broker  # type: ignore[attr-defined]
    background.run(broker.publish(new_event(type_, service="test", subject=case_id, data=data), EVENTS))


def _watermark_uncovered(page: Page) -> bool:
    watermark = page.locator("#diagram .bjs-powered-by")
    assert watermark.count() == 1 and watermark.is_visible()
    return bool(page.evaluate("""() => {
        const w = document.querySelector('#diagram .bjs-powered-by');
        const r = w.getBoundingClientRect();
        const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
        return r.width > 0 && r.height > 0 && (top === w || w.contains(top));
    }"""))


def _sign_in(page: Page, base: str, role_label: str) -> None:
    page.goto(f"{base}/aanmelden")
    page.get_by_label(role_label).check()
    page.get_by_role("button", name="Aanmelden").click()
    page.wait_for_url(f"{base}/")


def test_incident_group_retry_dlq_replay_and_definition_view(browser: Browser, stack: Any,  # noqa: F811
                                                             tmp_path: Path) -> None:
    engine, console, broken, background = stack
    base = console.url
    shots = Path(os.environ.get("IPSFLOW_CONSOLE_SCREENSHOTS") or tmp_path / "console-screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {shots}")

    # Two cases whose registration fails (an incident each); a confirmation that arrives before its case exists
    # (the engine retries it, then parks it).
    for case_id in GROUP:
        _publish(background, "ips.test.gestart.v1", case_id, {"aanvraag_id": case_id, "bedrag": 120_000})
    _publish(background, "ips.test.bevestigd.v1", DLQ_CASE, {"bevestigd": True})
    _until(lambda: all(_case(engine.url, c).get("incidenten") for c in GROUP), "two incidents")

    context = browser.new_context(viewport={"width": 1500, "height": 1000}, locale="nl-NL")
    page = context.new_page()
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base) else route.abort())
    problems = _watch(page)
    accessibility: dict[str, list[dict[str, Any]]] = {}
    _sign_in(page, base, "Functioneel beheerder")

    # --- the incident on its element, the group, the retry after the fix
    page.goto(f"{base}/zaken/{GROUP[0]}")
    page.wait_for_selector("#diagram[data-geladen]")
    assert page.locator('[data-element-id="Task_registreer"].ipsflow-incident').count() == 1
    assert _watermark_uncovered(page), "the bpmn.io watermark is covered on the case page"
    page.get_by_role("link", name="Incidenten", exact=True).click()
    page.wait_for_url(f"{base}/incidenten")
    row = page.locator("table.groepen tbody tr", has_text="register niet bereikbaar")
    assert row.locator("td.getal").inner_text() == "2"
    accessibility["incidenten"] = _axe(page, base)
    page.screenshot(path=shots / "console-incidenten.png", full_page=True)
    row.get_by_role("link", name="Task_registreer").click()
    page.wait_for_selector("#groep-opnieuw")
    accessibility["incidentgroep"] = _axe(page, base)
    page.screenshot(path=shots / "console-incidentgroep.png", full_page=True)
    group_url = page.url

    broken["register"] = False  # the service is fixed
    page.get_by_role("button", name="Alle 2 opnieuw proberen").click()
    page.wait_for_selector("#samenvatting", timeout=60_000)
    assert page.inner_text("#samenvatting") == "2 zaken: 2 opgelost."
    assert page.locator('tr[data-soort="opgelost"]').count() == 2
    accessibility["uitkomsten"] = _axe(page, base)
    page.screenshot(path=shots / "console-incident-uitkomst.png", full_page=True)
    for case_id in GROUP:
        assert "Task_registreer" not in _case(engine.url, case_id)["actieveElementen"]

    # --- the parked confirmation: start its case, wait until it waits for it, replay it from the console
    _publish(background, "ips.test.gestart.v1", DLQ_CASE, {"aanvraag_id": DLQ_CASE, "bedrag": 120_000})
    _until(lambda: "Task_bevestiging" in _case(engine.url, DLQ_CASE).get("actieveElementen", []),
           "the case to wait for its confirmation")

    def parked_listed() -> bool:  # the management API samples every few seconds
        page.goto(f"{base}/wachtrijen")
        return page.get_by_label("1 geparkeerde berichten van process_engine").count() == 1
    _until(parked_listed, "the queues page to show the parked confirmation", timeout=45)
    accessibility["wachtrijen"] = _axe(page, base)
    page.screenshot(path=shots / "console-wachtrijen.png", full_page=True)
    page.get_by_label("1 geparkeerde berichten van process_engine").click()
    page.wait_for_selector("#aantal-geparkeerd")
    assert page.inner_text("#aantal-geparkeerd") == "1" and "CaseNotYetKnown" in page.inner_text("main")
    accessibility["geparkeerd"] = _axe(page, base)
    page.screenshot(path=shots / "console-geparkeerd.png", full_page=True)
    page.locator("section.bericht").get_by_role("button", name="Terugzetten").click()
    page.wait_for_selector("#samenvatting")
    assert page.inner_text("#samenvatting").startswith("1 berichten teruggezet naar process_engine")
    _until(lambda: "Task_bevestiging" not in _case(engine.url, DLQ_CASE).get("actieveElementen", []),
           "the replayed confirmation to move the case on", timeout=30)
    time.sleep(1)  # a second delivery would show by now
    journal = _case(engine.url, DLQ_CASE)["journaal"]
    assert [j["what"] for j in journal if j.get("message") == "ips.test.bevestigd.v1"] == ["bericht ontvangen"]
    page.goto(f"{base}/wachtrijen/process_engine/geparkeerd")
    assert page.inner_text("#aantal-geparkeerd") == "0"

    # --- all of a lot replayed in the background (its own page), then purged; the purge's answer refreshed is
    # refused and purges nothing again. A confirmation for a case that never comes: parked, and parked again.
    _publish(background, "ips.test.bevestigd.v1", "zaak-komt-nooit", {"bevestigd": True})

    def one_parked() -> bool:
        page.goto(f"{base}/wachtrijen/process_engine/geparkeerd")
        return page.inner_text("#aantal-geparkeerd") == "1"
    _until(one_parked, "the confirmation for no case parked", timeout=60)
    page.get_by_role("region", name="Alle terugzetten").get_by_role("button", name="Terugzetten").click()
    page.wait_for_selector("#samenvatting")
    assert "/wachtrijen/process_engine/terugzettingen/" in page.url
    assert page.inner_text("#samenvatting").startswith("1 berichten teruggezet naar process_engine")
    accessibility["terugzetting"] = _axe(page, base)
    page.screenshot(path=shots / "console-terugzetting.png", full_page=True)
    _until(one_parked, "the confirmation parked again", timeout=60)
    page.get_by_label("Typ process_engine om alle 1 berichten te verwijderen").fill("process_engine")
    page.get_by_role("button", name="Legen").click()
    page.wait_for_selector("#samenvatting")
    assert page.inner_text("#samenvatting").startswith("1 geparkeerde berichten van process_engine")
    page.reload()  # the browser sends the purge's form again
    assert "al verstuurd" in page.inner_text("main")
    refusal = [p for p in problems if "409" in p]  # that refusal is the point: its response and the browser's note
    assert any(p.startswith("HTTP 409") and p.endswith("/wachtrijen/process_engine/legen") for p in refusal)
    problems[:] = [p for p in problems if p not in refusal]
    accessibility["al-verstuurd"] = _axe(page, base)
    page.get_by_role("link", name="Naar de parkeerplaats van process_engine, zoals die nu is").click()
    assert page.inner_text("#aantal-geparkeerd") == "0" and page.locator("#terugzettingen li").count() == 1

    # --- the case page with its commands and replies, and the definition view with its badges
    page.goto(f"{base}/zaken/{GROUP[0]}")
    page.wait_for_selector("#diagram[data-geladen]")
    assert page.locator("table.opdrachten tbody tr", has_text="ips.test.registreer.v1").count() == 2
    assert page.get_by_text("Geen brieven.").is_visible()  # notifications answered: this case has none yet
    assert _watermark_uncovered(page)
    accessibility["zaak"] = _axe(page, base)
    page.screenshot(path=shots / "console-zaak.png", full_page=True)
    page.get_by_role("link", name="Definities", exact=True).click()
    page.get_by_role("link", name="ips_test_process v1").click()
    page.wait_for_selector("#diagram[data-geladen]")
    assert page.get_attribute("#diagram", "data-geladen") == "ja", page.inner_text("#diagram-fout")
    badges = page.locator('.djs-overlays[data-container-id="Task_registreer"] .ipsflow-badge-afgerond')
    assert badges.inner_text() == "3"
    assert _watermark_uncovered(page), "the bpmn.io watermark is covered on the definition view"
    accessibility["definitie"] = _axe(page, base)
    page.screenshot(path=shots / "console-definitie.png", full_page=True)
    page.goto(f"{base}/audit")
    assert page.locator("td", has_text="terugzetten").count() == 2  # the one message, then the whole lot (1)
    page.screenshot(path=shots / "console-audit.png", full_page=True)
    context.close()

    # --- a viewer: no buttons; a post anyway is refused (403)
    viewer = browser.new_context(viewport={"width": 1500, "height": 1000}, locale="nl-NL")
    vpage = viewer.new_page()
    _sign_in(vpage, base, "Viewer (alleen lezen)")
    vpage.goto(f"{base}/wachtrijen/process_engine/geparkeerd")
    assert vpage.get_by_role("button", name="Terugzetten").count() == 0
    assert vpage.get_by_role("button", name="Legen").count() == 0
    csrf = vpage.locator('input[name="csrf"]').first.get_attribute("value")
    for path, form in (("/wachtrijen/process_engine/terugzetten", {"alle": "ja"}),
                       ("/wachtrijen/process_engine/legen", {"bevestiging": "process_engine"}),
                       (group_url.removeprefix(base) + "/opnieuw", {})):
        assert vpage.request.post(f"{base}{path}", form={"csrf": csrf or "", **form}).status == 403
    viewer.close()

    assert problems == [], problems
    assert {name: found for name, found in accessibility.items() if found} == {}
