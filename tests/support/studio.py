"""The studio's tests (issue 16) share these steps: a browser page locked to the console, signing in as a
procesbeheerder on the development sign-in page, the bpmn.io watermark check, and listing and deploying versions
through the engine's API."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from tests.support.tokens import ADMIN, PROCESBEHEERDER

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


def pagina(chromium: Browser, base: str, shots: Path, width: int, height: int) -> tuple[Any, Page, list[str], Path]:
    """A page that may reach the console only (no CDN, no other origin), with its problems watched (console
    errors and warnings, page errors, failed requests, HTTP errors); its screenshots go to ``shots``."""
    from tests.browser.test_console import _watch

    context = chromium.new_context(viewport={"width": width, "height": height}, locale="nl-NL")
    page = context.new_page()
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base) else route.abort())
    shots.mkdir()
    print(f"\nscreenshots: {shots}")
    return context, page, _watch(page), shots


def aanmelden(page: Page, base: str, rol: str = "Procesbeheerder") -> None:
    """Sign in on the console's development sign-in page as ``rol`` (the label of its choice)."""
    page.goto(f"{base}/aanmelden")
    page.get_by_label(rol, exact=True).check()
    page.get_by_role("button", name="Aanmelden").click()
    page.wait_for_url(f"{base}/")


def watermerk_vrij(page: Page, container: str) -> None:
    """The bpmn.io watermark: present, visible, and the topmost element at its centre (not covered)."""
    # dmn-js keeps a container per view (table, DRD); the one shown has the visible watermark.
    mark = page.locator(f"{container} .bjs-powered-by >> visible=true")
    assert mark.count() == 1, f"no visible bpmn.io watermark in {container}"
    mark.scroll_into_view_if_needed()
    uncovered = page.evaluate("""c => {
        const w = [...document.querySelectorAll(c + ' .bjs-powered-by')].find(e => e.getClientRects().length);
        const r = w.getBoundingClientRect();
        const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
        return r.width > 0 && r.height > 0 && (top === w || w.contains(top)) ? "" :
            `${top && top.outerHTML.slice(0, 200)} at ${JSON.stringify(r)}`;
    }""", container)
    assert uncovered == "", f"the bpmn.io watermark in {container} is covered: {uncovered}"


def versies(engine_url: str) -> list[dict[str, Any]]:
    """Every deployed version (the engine's API, read by functioneel beheer)."""
    answer = httpx.get(f"{engine_url}/api/v1/procesdefinities", headers=ADMIN, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def uitrollen(engine_url: str, bestanden: dict[str, str], toelichting: str | None = None,
              **extra: Any) -> httpx.Response:
    """Deploy through the engine's API as a procesbeheerder (as ``ipsflow bpmn deploy`` does); the answer as is."""
    body = {"bestanden": bestanden, **({"toelichting": toelichting} if toelichting else {}), **extra}
    return httpx.post(f"{engine_url}/api/v1/procesdefinities", headers=PROCESBEHEERDER, timeout=60, json=body)


def nieuwe_versie(engine_url: str, bestanden: dict[str, str], toelichting: str | None = None) -> str:
    """Deploy a new version; its hash."""
    answer = uitrollen(engine_url, bestanden, toelichting)
    assert answer.status_code == 201, answer.text
    return answer.json()["hash"]  # type: ignore[no-any-return]
