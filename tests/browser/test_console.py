"""The console in headless Chromium (Debian's, no download) against a real engine, broker and database: sign in
through the page, open the overview, the case explorer and a case page; no console errors or failed requests; the
diagram shows the case's active element and the bpmn.io watermark stays visible and uncovered (elementFromPoint);
axe-core (from tools/console/package-lock.json) finds no serious or critical WCAG 2.1 AA violation. Screenshots of
each page are written to the test's tmp_path (the path is printed).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from servicekit.broker import EVENTS, Broker
from servicekit.envelope import new_event
from tests.browser.test_bpmn_js import chromium_path
from tests.support.tokens import ADMIN

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "tools" / "console" / "node_modules" / "axe-core" / "axe.min.js"
BUNDLE = ROOT / "tools" / "console" / "dist" / "diagram.js"
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not AXE.exists() or not BUNDLE.exists():
        pytest.fail("the console's frontend is not installed: run `make deps` (tools/console/install.sh)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


async def _publish_applications(settings: Any) -> None:
    broker = Broker(settings)
    await broker.connect()
    for i, gemeente in enumerate(("0957", "0988", "0957")):
        case_id = f"zaak-browser-{i}"
        await broker.publish(new_event("ips.aanvraag.ingediend.v1", service="test", subject=case_id, data={
            "aanvraagId": case_id, "gemeenteCode": gemeente, "woongemeenteCode": gemeente, "trajectType": "CMD",
            "aanvraagdatum": "2026-03-02", "gewensteStartdatum": "2026-06-01", "ggzKvkNummer": "41178211",
            "ontvangenOp": "2026-03-02T09:00:00+01:00"}), EVENTS)
    await broker.close()


@pytest.fixture
def console(service: Any, settings_for: Any) -> Any:
    engine = service("process_engine").start()
    console = service("console").start(IPSFLOW_CONSOLE_ENGINE_URL=engine.url, IPSFLOW_CONSOLE_REFRESH_SECONDS="2")
    # In its own thread and loop: Playwright's sync API runs an event loop on this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _publish_applications(settings_for("test-driver"))).result()
    deadline = time.monotonic() + 60
    while httpx.get(f"{engine.url}/api/v1/zaken", headers=ADMIN, timeout=10).json()["totaal"] < 3:
        assert time.monotonic() < deadline, "the cases did not start"
        time.sleep(0.2)
    return console


def _watch(page: Page) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    # The overview's live refresh still under way when the test leaves the page is cut off by the browser
    # (net::ERR_ABORTED): not a failed request; any other abort or failure is.
    page.on("requestfailed", lambda r: None if (r.url.endswith("/overzicht/deel") and "ERR_ABORTED" in str(r.failure))
            else problems.append(f"failed request: {r.url} {r.failure}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    return problems


def _axe(page: Page, base: str) -> list[dict[str, Any]]:
    """axe-core from the console's own origin (its CSP allows no inline script), WCAG 2.1 A and AA rules."""
    page.route(f"{base}/__axe.js", lambda route: route.fulfill(status=200, content_type="application/javascript",
                                                              body=AXE.read_text()))
    page.add_script_tag(url=f"{base}/__axe.js")
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_AA)
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def test_console_pages_in_the_browser(browser: Browser, console: Any, tmp_path: Path) -> None:
    base = console.url
    context = browser.new_context(viewport={"width": 1500, "height": 1000}, locale="nl-NL")
    page = context.new_page()
    # Nothing but the console itself: no CDN, no other origin.
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base)
               else route.abort())
    problems = _watch(page)
    shots = tmp_path / "console-screenshots"
    shots.mkdir()
    print(f"\nscreenshots: {shots}")
    accessibility: dict[str, list[dict[str, Any]]] = {}

    page.goto(f"{base}/zaken")
    assert page.url == f"{base}/aanmelden"  # not signed in: to the sign-in page
    accessibility["aanmelden"] = _axe(page, base)
    # the console's own icon, in the page (a browser asks for /favicon.ico when a page names none: a 404 in its
    # console; a file of its own was a request that a quick navigation cut off), and one the browser can draw
    icon = page.get_attribute("link[rel=icon]", "href", timeout=1_000) or ""
    assert icon.startswith("data:image/svg+xml,"), icon
    assert page.evaluate("""src => new Promise(ok => { const i = new Image(); i.onload = () => ok(i.naturalWidth);
        i.onerror = () => ok(0); i.src = src; })""", icon) > 0
    page.screenshot(path=shots / "1-aanmelden.png", full_page=True)
    page.get_by_label("Functioneel beheerder").check()
    page.get_by_role("button", name="Aanmelden").click()
    page.wait_for_url(f"{base}/")
    assert page.get_by_role("heading", name="Overzicht").is_visible()
    assert page.locator(".tegel .getal").first.inner_text() == "3"
    # Live: the figures are rendered again by the server every 2 s (IPSFLOW_CONSOLE_REFRESH_SECONDS) in place.
    first = page.locator(".bijgewerkt").inner_text()
    with page.expect_response(f"{base}/overzicht/deel", timeout=10_000):
        pass
    page.wait_for_function("t => document.querySelector('.bijgewerkt').innerText !== t", arg=first, timeout=10_000)
    assert page.locator(".tegel .getal").first.inner_text() == "3"
    accessibility["overzicht"] = _axe(page, base)
    page.screenshot(path=shots / "2-overzicht.png", full_page=True)

    page.goto(f"{base}/zaken?gemeente=0957")
    assert page.locator("table.zaken tbody tr").count() == 2
    accessibility["zaken"] = _axe(page, base)
    page.screenshot(path=shots / "3-zaken.png", full_page=True)

    page.get_by_role("link", name="zaak-browser-0").click()
    page.wait_for_selector("#diagram[data-geladen]")
    assert page.get_attribute("#diagram", "data-geladen") == "ja", page.inner_text("#diagram-fout")
    active = json.loads(page.inner_text("#markeringen"))["actief"]
    assert active, "the case has an active element"
    assert page.locator(f'[data-element-id="{active[0]}"].ipsflow-actief').count() == 1
    # The bpmn.io watermark: present, visible, and the topmost element at its centre (not covered).
    watermark = page.locator("#diagram .bjs-powered-by")
    assert watermark.count() == 1 and watermark.is_visible()
    uncovered = page.evaluate("""() => {
        const w = document.querySelector('#diagram .bjs-powered-by');
        const r = w.getBoundingClientRect();
        const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
        return r.width > 0 && r.height > 0 && (top === w || w.contains(top));
    }""")
    assert uncovered, "the bpmn.io watermark is covered"
    accessibility["zaak"] = _axe(page, base)
    page.screenshot(path=shots / "4-zaak.png", full_page=True)

    page.goto(f"{base}/audit")
    accessibility["audit"] = _axe(page, base)
    page.screenshot(path=shots / "5-audit.png", full_page=True)
    context.close()

    assert problems == [], problems
    assert {name: found for name, found in accessibility.items() if found} == {}
