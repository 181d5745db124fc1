"""The case API's allow-list of variables (servicekit.zaakvariabelen) against what the diagram really sets.

Every variable that ``bpmn/ips_traject.bpmn`` sets (script and pre/post-script assignments, service task result
variables, message variables, form fields, data objects, the outputs of the DMN tables it calls, and what the engine
records itself on completion) must be allowed for some organisation type or be listed as internal; and nothing
may be listed that the diagram does not set.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from lxml import etree

from process_engine import runtime
from servicekit.zaakvariabelen import ENGINE_INTERN, INTERN, ZICHTBAAR, zichtbare_variabelen

ROOT = Path(__file__).resolve().parents[2]
BPMN = ROOT / "bpmn" / "ips_traject.bpmn"
#: What the engine adds to a completed user task's data itself (process_engine.engine.complete_user_task).
ENGINE_RECORDED = {"ondertekenaar"}


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _dmn_outputs() -> dict[str, set[str]]:
    outputs: dict[str, set[str]] = {}
    for path in BPMN.parent.glob("*.dmn"):
        for decision in etree.parse(str(path)).getroot().iter("{*}decision"):
            outputs[decision.get("id")] = {o.get("name") for o in decision.iter("{*}output")}
    return outputs


def variables_set_by_the_diagram() -> dict[str, set[str]]:
    """Variable name -> how the diagram sets it."""
    found: dict[str, set[str]] = {}
    dmn = _dmn_outputs()

    def add(name: str, how: str) -> None:
        found.setdefault(name, set()).add(how)

    for el in etree.parse(str(BPMN)).getroot().iter():
        tag = _local(el)
        if tag in ("script", "preScript", "postScript") and el.text:
            for node in ast.walk(ast.parse(el.text)):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    add(node.id, tag)
        elif tag == "serviceTaskOperator" and el.get("resultVariable"):
            add(el.get("resultVariable"), "resultVariable")
        elif tag == "messageVariable" and (el.text or "").strip():
            add(el.text.strip(), "messageVariable")
        elif tag == "dataObject":
            add(el.get("id"), "dataObject")
        elif tag == "property" and el.get("name") == "formSchema":
            for name in json.loads(el.get("value")).get("properties", {}):
                add(name, "form")
        elif tag == "calledDecisionId":
            for name in dmn[(el.text or "").strip()]:
                add(name, "dmn")
        elif tag == "userTask":
            for name in ENGINE_RECORDED:
                add(name, "engine")
    return found


def test_the_extraction_sees_every_kind_of_assignment():
    found = variables_set_by_the_diagram()
    assert {"aanvraag", "toetsing", "motivering", "te_laat", "looptijd_maanden", "beslisdatum", "ondertekenaar"} \
        <= set(found)
    assert "postScript" in found["beslisdatum"] and "form" in found["motivering"]


def test_every_variable_the_diagram_sets_is_allowed_for_someone_or_internal():
    allowed = set().union(*ZICHTBAAR["ips_traject"].values())
    internal = INTERN["ips_traject"]
    set_by_diagram = variables_set_by_the_diagram()
    unlisted = sorted(set(set_by_diagram) - allowed - internal)
    assert unlisted == [], f"decide who may read these new variables (zaakvariabelen.py): {unlisted}"
    stale = sorted((allowed | internal) - set(set_by_diagram))
    assert stale == [], f"listed but never set by the diagram: {stale}"
    assert not allowed & internal
    assert runtime._CASE_ID_KEY in ENGINE_INTERN and not allowed & ENGINE_INTERN


def test_the_ggz_sees_no_working_data_of_the_official_and_uwv_sees_nothing():
    variables = {"aanvraag": {"aanvraagId": "A-1"}, "motivering": "Akkoord.", "besluit": "toekennen",
                 "ondertekenaar": {"subject": "behandelaar-0957"}, "reservering": {"gereserveerd": True},
                 "beschikking": {"kenmerk": "K"}, "spiff_internal": 1, "onbekend": "x"}
    ggz = zichtbare_variabelen("ips_traject", "ggz", variables)
    assert set(ggz) == {"aanvraag", "beschikking"}
    assert set(zichtbare_variabelen("ips_traject", "gemeente", variables)) == set(variables) - {"spiff_internal",
                                                                                                "onbekend"}
    assert zichtbare_variabelen("ips_traject", "uwv", variables) == {}
    # UWV sees the working data only of a case it decides itself (ips-cmd-2019)
    uwv = zichtbare_variabelen("ips_traject", "uwv", {**variables, "besluitvormer": "uwv"})
    assert {"besluit", "motivering", "reservering", "besluitvormer"} <= set(uwv) and "onbekend" not in uwv
    assert zichtbare_variabelen("een_ander_proces", "beheer", variables) == {}, "no allow-list: nothing shown"
