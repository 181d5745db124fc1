"""The studio's DMN editor in headless Chromium against a real engine and console on the real broker and database
(issue 16, item 3): a procesbeheerder raises a tariff in dmn-js; the test bench (evaluated by the engine) fails on
the case that expects the old tariff, and the deploy is refused with that case named; with the case's expected
value updated the bench passes and the deploy makes version 2; a case started before keeps the old tariff and a
new case gets the new one. The bpmn.io watermark is visible and uncovered on the table; axe-core finds no serious
or critical violation; no console errors. Screenshots go to the test's tmp dir (docs/studio-dmn.png is one)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser

from servicekit.broker import EVENTS, Broker
from servicekit.envelope import CloudEvent, new_event
from tests.browser.test_console import _axe, browser  # noqa: F401  (the browser fixture)
from tests.support.fake_services import FakeServices
from tests.support.studio import aanmelden, pagina, versies, watermerk_vrij
from tests.support.tokens import ADMIN

TOETSING = {"regeling": "ips-gemeenten-2023", "bevoegd": True, "bevoegdeGemeente": "0957",
            "beslisdatum": "2026-04-27", "beslistermijnEinde": "2026-04-27", "hersteltermijn": "P14D"}
VOLLEDIG = {"volledig": True, "ontbrekend": [], "volledigOntvangenOp": "2026-03-02T09:00:00+00:00", "criteria": {}}


def _antwoord(event: CloudEvent) -> tuple[str, dict[str, Any]] | None:
    """grants' toetsing and intake's completeness check; the reservation stays unanswered (the tariff is known)."""
    data = {"ips.aanvraag.toetsen.v1": TOETSING, "ips.aanvraag.volledigheid_controleren.v1": VOLLEDIG}
    return ("ips.opdracht.voltooid.v1", data[event.type]) if event.type in data else None


class Stand:
    """The fake grants and intake on a loop of their own (Playwright's sync API runs one on the test's thread)."""

    def __init__(self, settings: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.broker = Broker(settings)
        self.run(self.broker.connect())
        self.fake = FakeServices(self.broker, pattern="ips.aanvraag.#", reply=_antwoord)
        self.run(self.fake.start())

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    def aanvraag(self, case_id: str) -> None:
        self.run(self.broker.publish(new_event("ips.aanvraag.ingediend.v1", service="test", subject=case_id, data={
            "aanvraagId": case_id, "gemeenteCode": "0957", "woongemeenteCode": "0957", "trajectType": "CMD",
            "aanvraagdatum": "2026-03-02", "gewensteStartdatum": "2026-06-01", "ggzKvkNummer": "41178211",
            "ontvangenOp": "2026-03-02T09:00:00+01:00"}), EVENTS))

    def close(self) -> None:
        self.run(self.fake.stop())
        self.run(self.broker.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def stack(service: Any, settings_for: Any) -> Iterator[tuple[Any, Any, Stand]]:
    engine = service("process_engine").start()
    console = service("console").start(IPSFLOW_CONSOLE_ENGINE_URL=engine.url)
    stand = Stand(settings_for("studio-dmn-driver"))
    try:
        yield engine, console, stand
    finally:
        stand.close()


def _tarief(engine: Any, case_id: str, timeout: float = 60) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = httpx.get(f"{engine.url}/api/v1/zaken/{case_id}", headers=ADMIN, timeout=10)
        if answer.status_code == 200 and "tarief_cents" in answer.json()["variabelen"]:
            return answer.json()["variabelen"]["tarief_cents"], answer.json()["definitieHash"]
        time.sleep(0.2)
    raise AssertionError(f"{case_id} got no tariff")


def test_a_dmn_change_deploys_only_with_a_passing_test_bench(browser: Browser,  # noqa: F811
                                                              stack: tuple[Any, Any, Stand], tmp_path: Path) -> None:
    engine, console, stand = stack
    base = console.url
    stand.aanvraag("zaak-oud-tarief")
    assert _tarief(engine, "zaak-oud-tarief")[0] == 800_000
    [v1] = versies(engine.url)

    context, page, problems, shots = pagina(browser, base, tmp_path / "studio-dmn", 1500, 1100)
    accessibility: dict[str, list[dict[str, Any]]] = {}

    aanmelden(page, base)
    page.goto(f"{base}/studio")
    page.get_by_role("link", name="DMN-tabellen bewerken (met testbank)").click()
    accessibility["tabellen"] = _axe(page, base)
    page.get_by_role("link", name="ips_tarieven.dmn").click()
    page.wait_for_selector("#dmn-editor[data-geladen]")
    assert page.get_attribute("#dmn-editor", "data-geladen") == "ja", page.inner_text("#dmn-status")
    rows = page.locator("#testgevallen-romp tr")
    assert rows.count() == 4
    # dmn-js speaks Dutch (studio/dmn-vertaling.js): the clauses, the hit policy and a rule's context menu
    clauses = page.locator("#dmn-editor th .clause").all_inner_texts()
    assert clauses[:2] == ["Als", "En"] and "Dan" in clauses, clauses
    assert page.inner_text("#dmn-editor .hit-policy .dms-label") == "Hitpolicy:"
    assert page.inner_text("#dmn-editor .hit-policy .dms-input") == "Uniek"
    page.locator('#dmn-editor td[data-element-id="Rule_ips_gemeenten_2023_CMD_tarief"]').click(button="right")
    assert page.get_by_text("Regel erboven toevoegen").is_visible()
    page.screenshot(path=shots / "0-nederlands.png", full_page=True)
    page.keyboard.press("Escape")
    page.locator("h1").click()

    # Raise the tariff of CMD under ips-gemeenten-2023 in the table itself (a dmn-js cell).
    cell = page.locator('#dmn-editor td[data-element-id="Rule_ips_gemeenten_2023_CMD_tarief"]')
    cell.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("850000")
    page.locator("h1").click()
    page.get_by_role("button", name="Testbank draaien").click()
    page.wait_for_function("() => document.querySelector('#testbank-status').dataset.geslaagd")
    assert page.inner_text("#testbank-status") == "1 van 4 testgevallen gefaald."
    failed = page.locator('#testgevallen-romp tr[data-testgeval="ips-gemeenten-2023, CMD"] td.gefaald')
    assert "850000" in failed.inner_text()
    page.get_by_label("Toelichting (waarom deze versie?)").fill("CMD-tarief 2023 naar € 8.500")
    page.get_by_role("button", name="Uitrollen").click()
    page.wait_for_function("() => document.querySelector('#uitrol-uitkomst').dataset.uitgerold")
    assert page.get_attribute("#uitrol-uitkomst", "data-uitgerold") == "nee"
    assert "ips-gemeenten-2023, CMD" in page.inner_text("#uitrol-problemen")
    page.screenshot(path=shots / "1-testbank-faalt.png", full_page=True)
    assert len(versies(engine.url)) == 1

    # The case's expectation follows the new tariff: the bench passes and the table can be deployed.
    expected = page.get_by_label("Verwacht Tarief per traject (eurocent, incl. btw) van testgeval "
                                 "ips-gemeenten-2023, CMD")
    expected.fill("850000")
    expected.press("Tab")
    page.get_by_role("button", name="Testbank draaien").click()
    page.wait_for_function("() => document.querySelector('#testbank-status').innerText.startsWith('Alle')")
    assert page.inner_text("#testbank-status") == "Alle 4 testgevallen geslaagd."
    page.get_by_label("Regeling", exact=True).fill("ips-gemeenten-2023")
    page.get_by_label("Trajecttype", exact=True).fill("EPA")
    page.get_by_role("button", name="Evalueren").click()
    page.wait_for_function("() => document.querySelector('#proef-uitkomst').innerText.length > 0")
    assert "1132500" in page.inner_text("#proef-uitkomst")
    watermerk_vrij(page, "#dmn-editor")
    accessibility["editor"] = _axe(page, base)
    page.screenshot(path=shots / "2-testbank-geslaagd.png", full_page=True)
    page.get_by_role("button", name="Uitrollen").click()
    page.wait_for_function("() => document.querySelector('#uitrol-uitkomst').dataset.uitgerold === 'ja'")
    assert page.inner_text("#uitrol-uitkomst").startswith("Versie 2 uitgerold")
    page.screenshot(path=shots / "3-uitgerold.png", full_page=True)

    versions = versies(engine.url)
    v2 = next(d for d in versions if d["versie"] == 2)
    stand.aanvraag("zaak-nieuw-tarief")
    assert _tarief(engine, "zaak-nieuw-tarief") == (850_000, v2["hash"])
    assert _tarief(engine, "zaak-oud-tarief") == (800_000, v1["hash"])
    page.goto(f"{base}/audit")
    assert "DMN uitrollen" in page.inner_text("main")
    context.close()

    # The refused deploy is a 409 (and Chromium logs the failed fetch); nothing else may go wrong.
    refused = [p for p in problems if ("/uitrollen" in p and "409" in p) or "status of 409" in p]
    assert len(refused) >= 1 and [p for p in problems if p not in refused] == [], problems
    assert {name: found for name, found in accessibility.items() if found} == {}
