"""Every diagram opens in bpmn-js: headless Chromium loads tools/bpmn/viewer.html (bpmn-js NavigatedViewer from
tools/bpmn/node_modules, no CDN), imports the diagram and must render exactly the shapes and edges of its BPMN DI,
without an import error or warning. A screenshot of each diagram is written to the test's tmp_path.

Needs `make deps` (npm ci in tools/bpmn, Debian's chromium). Playwright's own browser download is not used.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
VIEWER = ROOT / "tools" / "bpmn" / "viewer.html"
BPMN_JS = ROOT / "tools" / "bpmn" / "node_modules" / "bpmn-js" / "dist" / "bpmn-navigated-viewer.production.min.js"
BPMNDI = "{http://www.omg.org/spec/BPMN/20100524/DI}"

DIAGRAMS = sorted([*(ROOT / "bpmn").glob("*.bpmn"), *(ROOT / "tests" / "bpmn").glob("*.bpmn")])


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        pytest.fail("chromium is not installed: run `make deps` (apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not BPMN_JS.exists():
        pytest.fail("bpmn-js is not installed: run `make deps` (npm ci in tools/bpmn)")
    with sync_playwright() as playwright:
        # We run as root in CI, where Chromium's sandbox cannot start.
        launched = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1800, "height": 900})
    opened = context.new_page()
    # Only file:// is allowed: the page must not need the network (no CDN).
    opened.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file://") else route.abort())
    yield opened
    context.close()


def expected_di(diagram: Path) -> tuple[list[str], list[str]]:
    """The bpmnElement of every BPMNShape and BPMNEdge in the diagram's DI, parsed with Python."""
    tree = ET.parse(diagram)
    shapes = [shape.attrib["bpmnElement"] for shape in tree.iter(f"{BPMNDI}BPMNShape")]
    edges = [edge.attrib["bpmnElement"] for edge in tree.iter(f"{BPMNDI}BPMNEdge")]
    return shapes, edges


@pytest.mark.parametrize("diagram", DIAGRAMS, ids=lambda p: str(p.relative_to(ROOT)))
def test_diagram_renders_in_bpmn_js(diagram: Path, page: Page, tmp_path: Path) -> None:
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.on("console", lambda message: page_errors.append(message.text) if message.type == "error" else None)
    page.goto(VIEWER.as_uri())
    page.wait_for_function("typeof window.renderDiagram === 'function'")

    result: dict[str, Any] = page.evaluate("xml => window.renderDiagram(xml)", diagram.read_text(encoding="utf-8"))

    assert result["error"] is None, f"bpmn-js could not import {diagram.name}: {result['error']} {result['warnings']}"
    assert result["warnings"] == [], f"bpmn-js import warnings for {diagram.name}: {result['warnings']}"
    shapes, edges = expected_di(diagram)
    assert shapes, f"{diagram.name} has no BPMNShape: no diagram interchange to render"
    assert len(result["shapes"]) == len(shapes), (
        f"{diagram.name}: bpmn-js rendered {len(result['shapes'])} shapes, the DI has {len(shapes)}; "
        f"missing {sorted(set(shapes) - set(result['shapes']))}, extra {sorted(set(result['shapes']) - set(shapes))}"
    )
    assert sorted(result["shapes"]) == sorted(shapes)
    assert sorted(result["connections"]) == sorted(edges), f"{diagram.name}: rendered edges differ from the DI"
    assert page_errors == [], f"errors in the page while rendering {diagram.name}: {page_errors}"

    screenshot = tmp_path / f"{diagram.stem}.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000, "the screenshot is (nearly) empty"


def test_viewer_reports_a_broken_diagram(page: Page) -> None:
    page.goto(VIEWER.as_uri())
    page.wait_for_function("typeof window.renderDiagram === 'function'")
    result = page.evaluate("xml => window.renderDiagram(xml)", "<bpmn:definitions xmlns:bpmn='nope'><oops/>")
    assert result["error"] is not None or result["warnings"], f"a broken diagram was accepted: {result}"
