"""Migration in the studio, in headless Chromium against a real engine and console on the real broker and
database (issue 16, item 6): one case named by its id is moved and the move reversed; then in bulk, 200 cases of
version 1 of tests/bpmn/migratie/migratie_v1.bpmn wait, two thirds in Wacht_a and one third in Wacht_b, which
version 2 no longer has. The dry run lists every case, the blocked ones with their reason; the real run moves
exactly the movable ones; then every case gets its confirmation and runs to its end, the moved ones through
version 2's script task and the others on version 1. axe-core finds no serious or critical violation; no console
errors. Screenshots (docs/studio-migratie-proefrun.png is one) go to the tmp dir."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser

from servicekit.broker import EVENTS
from servicekit.envelope import new_event
from tests.browser.test_console import _axe, browser  # noqa: F401  (the browser fixture)
from tests.browser.test_studio_dmn import Stand
from tests.support.studio import aanmelden, nieuwe_versie, pagina, versies
from tests.support.tokens import ADMIN

BPMN = Path(__file__).resolve().parents[1] / "bpmn" / "migratie"  # not in tests/bpmn: one process id twice
ZAKEN = 200
ROUTE = {f"mig-{i:03d}": "b" if i % 3 == 0 else "a" for i in range(ZAKEN)}
MOVABLE = {c for c, r in ROUTE.items() if r == "a"}


@pytest.fixture
def stack(service: Any, settings_for: Any, tmp_path: Path) -> Iterator[tuple[Any, Any, Stand]]:
    bpmn = tmp_path / "bpmn"
    bpmn.mkdir()
    shutil.copy(BPMN / "migratie_v1.bpmn", bpmn / "migratie.bpmn")
    engine = service("process_engine").start(IPSFLOW_BPMN_DIR=str(bpmn), IPSFLOW_CATALOGUE_FILE="")
    console = service("console").start(IPSFLOW_CONSOLE_ENGINE_URL=engine.url)
    stand = Stand(settings_for("studio-migratie-driver"))
    try:
        yield engine, console, stand
    finally:
        stand.close()


def _zaken(page: Any, selector: str) -> set[str]:
    return set(page.eval_on_selector_all(selector, "rows => rows.map(r => r.dataset.zaak)"))


def _publish_all(stand: Stand, soort: str, data: Any, cases: list[str]) -> None:
    async def publish() -> None:
        for case_id in cases:
            await stand.broker.publish(new_event(soort, service="test", subject=case_id, data=data(case_id)
                                                 if callable(data) else data), EVENTS)
    stand.run(publish(), timeout=180)


def _wait_total(engine: Any, query: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    total = -1
    while time.monotonic() < deadline:
        total = httpx.get(f"{engine.url}/api/v1/zaken?{query}&limit=1", headers=ADMIN, timeout=30).json()["totaal"]
        if total == count:
            return
        time.sleep(0.5)
    raise AssertionError(f"{query}: {total} cases, expected {count}")


def test_bulk_migration_dry_run_real_run_and_the_cases_finish(browser: Browser,  # noqa: F811
                                                               stack: tuple[Any, Any, Stand], tmp_path: Path) -> None:
    engine, console, stand = stack
    base = console.url
    started = time.monotonic()
    _publish_all(stand, "ips.test.gestart.v1", lambda c: {"route": ROUTE[c]}, list(ROUTE))
    _wait_total(engine, "status=running", ZAKEN, timeout=120)
    seeded = time.monotonic() - started
    [v1] = versies(engine.url)
    v2 = nieuwe_versie(engine.url, {"migratie.bpmn": (BPMN / "migratie_v2.bpmn").read_text()}, "Wacht_b vervalt")

    context, page, problems, shots = pagina(browser, base, tmp_path / "studio-migratie", 1400, 1000)
    accessibility: dict[str, list[dict[str, Any]]] = {}

    aanmelden(page, base)
    page.goto(f"{base}/studio")
    page.get_by_role("link", name="Zaken migreren naar een andere versie").click()
    accessibility["migraties"] = _axe(page, base)

    # One case first, by its id, and back: the reversal puts it on version 1 where it was.
    page.get_by_label("Of precies deze zaken (kenmerken, één per regel)").fill("mig-001")
    page.get_by_label("Doelversie").select_option(v2)
    page.get_by_role("button", name="Proefrun").click()
    assert page.inner_text("#aantal-kan") == "1"
    page.get_by_label("Ik wil de 1 zaken die mee kunnen nu verplaatsen").check()
    page.get_by_role("button", name="Migreren").click()
    assert page.inner_text("#aantal-verplaatst") == "1"
    assert httpx.get(f"{engine.url}/api/v1/zaken/mig-001", headers=ADMIN, timeout=30).json()["definitieHash"] == v2
    page.get_by_label("Zet de verplaatste zaken die nog niet verder zijn gegaan terug op hun oude versie").check()
    page.get_by_role("button", name="Terugdraaien").click()
    assert page.inner_text("#terug-uitkomst").startswith("Teruggedraaid: 1 van 1")
    back = httpx.get(f"{engine.url}/api/v1/zaken/mig-001", headers=ADMIN, timeout=30).json()
    assert back["definitieHash"] == v1["hash"] and back["actieveElementen"] == ["Wacht_a"]

    page.goto(f"{base}/studio/migraties")
    page.get_by_label("Bronversie (alle lopende zaken van deze versie)").select_option(v1["hash"])
    page.get_by_label("Doelversie").select_option(v2)
    t = time.monotonic()
    with page.expect_navigation(timeout=120_000):  # a form post: the engine judges every case first
        page.get_by_role("button", name="Proefrun").click(no_wait_after=True)
    page.wait_for_selector("#proefrun")
    dry_run = time.monotonic() - t
    assert page.inner_text("#aantal-kan") == str(len(MOVABLE))
    assert page.inner_text("#aantal-geblokkeerd") == str(ZAKEN - len(MOVABLE))
    rows = page.locator("table.migratie-zaken tbody tr")
    assert rows.count() == ZAKEN
    assert _zaken(page, "table.migratie-zaken tbody tr.geblokkeerd") == set(ROUTE) - MOVABLE
    assert _zaken(page, "table.migratie-zaken tbody tr.kan") == MOVABLE
    reason = "wacht in 'Wacht op bevestiging B' (Wacht_b), dat de doelversie niet heeft"
    assert page.eval_on_selector_all("tr.geblokkeerd td:last-child", "cells => cells.map(c => c.innerText)") == \
        [reason] * (ZAKEN - len(MOVABLE))
    assert httpx.get(f"{engine.url}/api/v1/zaken?definitieHash={v2}&limit=1", headers=ADMIN,
                     timeout=30).json()["totaal"] == 0, "the dry run moved nothing"
    accessibility["proefrun"] = _axe(page, base)
    page.locator("#h-proefrun").scroll_into_view_if_needed()
    page.evaluate("() => document.querySelector('#h-proefrun').scrollIntoView()")
    page.screenshot(path=shots / "1-proefrun.png")

    page.get_by_label(f"Ik wil de {len(MOVABLE)} zaken die mee kunnen nu verplaatsen").check()
    t = time.monotonic()
    with page.expect_navigation(timeout=60_000):  # 200 cases: a background job, its page follows the progress
        page.get_by_role("button", name="Migreren").click(no_wait_after=True)
    assert page.locator("#voortgang-balk").get_attribute("max") == str(ZAKEN)
    accessibility["voortgang"] = _axe(page, base)
    page.screenshot(path=shots / "2-voortgang.png")
    migratie_id = page.url.rsplit("/", 1)[-1]
    running = httpx.get(f"{engine.url}/api/v1/migraties/{migratie_id}", headers=ADMIN, timeout=30).json()
    assert running["totaal"] == ZAKEN and running["status"] in ("bezig", "klaar"), running
    page.wait_for_selector("#aantal-verplaatst", timeout=300_000)  # the page reloads itself when it is done
    real_run = time.monotonic() - t
    done = httpx.get(f"{engine.url}/api/v1/migraties/{migratie_id}", headers=ADMIN, timeout=30).json()
    assert done["status"] == "klaar" and done["verwerkt"] == ZAKEN and done["verplaatst"] == len(MOVABLE), done
    assert page.inner_text("#aantal-verplaatst") == str(len(MOVABLE))
    assert _zaken(page, "table.migratie-zaken tbody tr.verplaatst") == MOVABLE
    assert _zaken(page, "table.migratie-zaken tbody tr.geblokkeerd") == set(ROUTE) - MOVABLE
    accessibility["uitkomst"] = _axe(page, base)
    page.screenshot(path=shots / "3-uitkomst.png")
    on_v2 = httpx.get(f"{engine.url}/api/v1/zaken?definitieHash={v2}&limit=1000", headers=ADMIN, timeout=30).json()
    assert {z["id"] for z in on_v2["zaken"]} == MOVABLE

    t = time.monotonic()
    _publish_all(stand, "ips.test.bevestigd.v1", {"ok": True}, list(ROUTE))
    _wait_total(engine, "status=completed", ZAKEN, timeout=180)
    finished = time.monotonic() - t
    for case_id in sorted(ROUTE)[:12]:  # a sample of both kinds: which version each ran to its end on
        zaak = httpx.get(f"{engine.url}/api/v1/zaken/{case_id}", headers=ADMIN, timeout=30).json()
        steps = [h["elementId"] for h in zaak["geschiedenis"]]
        assert zaak["status"] == "completed" and ("Stap_v2" in steps) == (case_id in MOVABLE), (case_id, steps)
        assert zaak["definitieHash"] == (v2 if case_id in MOVABLE else v1["hash"])
    page.goto(f"{base}/audit")
    audit = page.inner_text("main")
    assert "migreren" in audit and "migratie proefrun" in audit and "migratie terugdraaien" in audit
    context.close()
    print(f"seed {seeded:.1f} s, dry run {dry_run:.1f} s, real run {real_run:.1f} s, to the end {finished:.1f} s")

    assert problems == [], problems
    assert {name: found for name, found in accessibility.items() if found} == {}

