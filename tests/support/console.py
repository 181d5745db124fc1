"""Signing in to the console (services/console) in tests: the development sign-in page, as a browser would."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def sign_in(url: str, rol: str) -> tuple[httpx.Client, httpx.Response]:
    """A client with the console's session cookie for ``rol``, and the sign-in answer (303 when admitted)."""
    client = httpx.Client(base_url=url, timeout=60)
    page = client.get("/aanmelden")
    assert page.status_code == 200, page.text
    answer = client.post("/aanmelden", data={"rol": rol, "csrf": csrf_of(page.text)})
    return client, answer


def bpmn_dir_with_test_process(tmp_path: Path) -> str:
    """A BPMN directory with only tests/bpmn/test_process.bpmn and its decision table: the console's tests need
    that one process, whatever else tests/bpmn holds."""
    folder = tmp_path / "bpmn-test-process"
    folder.mkdir(exist_ok=True)
    source = Path(__file__).resolve().parents[1] / "bpmn"
    for name in ("test_process.bpmn", "test_decision.dmn"):
        shutil.copy(source / name, folder / name)
    return str(folder)
