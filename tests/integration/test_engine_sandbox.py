"""The deploy API of the running process engine refuses code that the script sandbox refuses (issue 12, item 1):
400 problem+json naming each element, its file and kind; nothing is stored. The whole corpus of escapes goes
through the same validation in tests/unit/test_script_sandbox.py; here a few go through HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.sandbox import ESCAPES, ISSUE_12_ESCAPE, process
from tests.support.tokens import ADMIN

BPMN_DIR = Path(__file__).resolve().parents[1] / "bpmn"
DMN = (BPMN_DIR / "test_decision.dmn").read_text()


@pytest.fixture
def engine(service):
    return service("process_engine").start(IPSFLOW_BPMN_DIR=str(BPMN_DIR), IPSFLOW_CATALOGUE_FILE="")


def _deploy(engine, files: dict[str, bytes | str]) -> httpx.Response:
    body = {"bestanden": {name: data.decode() if isinstance(data, bytes) else data for name, data in files.items()}}
    return httpx.post(f"{engine.url}/api/v1/procesdefinities", headers=ADMIN, json=body, timeout=30)


def _definition_count(engine) -> int:
    response = httpx.get(f"{engine.url}/api/v1/procesdefinities", headers=ADMIN, timeout=10)
    assert response.status_code == 200
    return len(response.json())


def test_deploy_names_every_refused_script_condition_and_dmn_cell(engine):
    files = process(
        script=ISSUE_12_ESCAPE,
        pre='proof = "{0.__class__.__mro__}".format(aanvraag)',
        post="proof = ().__class__.__bases__[0].__subclasses__()",
        condition='getattr(x, "__glo" + "bals__")',
    )
    dmn = (DMN.replace("<text>&lt;= 500000</text>", "<text>&lt;= [v for v in (g.gi_frame for g in [1])]</text>")
              .replace('<text>"handmatig"</text>', "<text>vars()</text>"))
    before = _definition_count(engine)
    response = _deploy(engine, {**files, "d.dmn": dmn})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    named = {(p["name"], p["file"], p["kind"], p["code"]) for p in response.json()["invalidParams"]}
    assert named == {
        ("Script_evil", "evil.bpmn", "scriptTask/script", "script"),
        ("Task_evil", "evil.bpmn", "subProcess/preScript", "script"),
        ("Task_evil", "evil.bpmn", "subProcess/postScript", "script"),
        ("Flow_evil", "evil.bpmn", "sequenceFlow/conditionExpression", "script"),
        ("InputEntry_automatisch", "d.dmn", "inputEntry", "script"),
        ("OutputEntry_handmatig", "d.dmn", "outputEntry", "script"),
    }
    assert _definition_count(engine) == before


@pytest.mark.parametrize("name", ["issue-12-generator-frame-walk", "str-format-attribute-walk",
                                  "subclasses-via-tuple-literal", "getattr-computed-name",
                                  "lambda-default-generator", "coroutine-cr-frame"])
def test_deploy_refuses_a_known_escape_in_a_script_task(engine, name):
    response = _deploy(engine, process(script=ESCAPES[name]))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problems = response.json()["invalidParams"]
    assert problems and {(p["name"], p["kind"]) for p in problems} == {("Script_evil", "scriptTask/script")}
    # the same process with harmless code is deployed: the refusal is about the code
    harmless = _deploy(engine, process())
    assert harmless.status_code in (200, 201), harmless.text
