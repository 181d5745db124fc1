"""bpmn/ips_tarieven.testbank.json, the test cases kept next to the tariff table (the studio's DMN test bench):
they pass on the table in git, they name each regulation's tariff and duration as the regulation files in
services/grants/regelingen/ do, so a table change that the regulations do not make fails here and in the
engine's deploy gate; and a changed tariff or a cell that raises fails its case."""

from __future__ import annotations

from pathlib import Path

import pytest

from grants.regelingen import load_configs
from process_engine import dmn_testbank as tb
from process_engine import runtime as rt

BPMN = Path(__file__).resolve().parents[2] / "bpmn"
DMN = (BPMN / "ips_tarieven.dmn").read_bytes()
CASES = tb.lees_testbank((BPMN / tb.testbank_naam("ips_tarieven.dmn")).read_bytes())


def test_the_cases_in_git_pass_on_the_table_in_git():
    results = tb.draai(DMN, CASES, "ips_tarieven.dmn")
    assert [r.naam for r in results if not r.geslaagd] == []
    assert any(not c.verwacht for c in CASES), "one case checks that an unknown regulation gets no tariff"


@pytest.mark.parametrize("regeling", load_configs(), ids=lambda c: c.id)
def test_the_cases_agree_with_the_regulation_files(regeling):
    for typ in regeling.trajecttypen:
        matching = [c for c in CASES if c.invoer == {"Input_regeling": regeling.id, "Input_trajecttype": typ}]
        assert matching, f"no test case for {regeling.id} {typ}"
        assert all(c.verwacht == {"tarief_cents": regeling.tarieven[typ],
                                  "looptijd_maanden": regeling.looptijd_maanden[typ]} for c in matching)


def test_a_changed_tariff_fails_its_case_and_the_gate_says_which():
    changed = DMN.replace(b">800000<", b">850000<", 1)  # ips-cmd-2019 CMD
    results = tb.draai(changed, CASES, "ips_tarieven.dmn")
    [failed] = [r for r in results if not r.geslaagd]
    assert failed.naam == "ips-cmd-2019, CMD" and failed.uitvoer["tarief_cents"] == 850000
    error = tb.TestbankGefaald({"ips_tarieven.dmn": results})
    assert [(p.element_id, p.file) for p in error.problems] == [("ips-cmd-2019, CMD", "ips_tarieven.testbank.json")]
    assert "800000" in error.problems[0].message and "850000" in error.problems[0].message


def test_unknown_columns_a_failing_cell_and_refused_code():
    with pytest.raises(tb.TestbankFout, match="Input_bestaat_niet"):
        tb.evalueer(DMN, "Decision_ips_tarief", {"Input_bestaat_niet": 1})
    with pytest.raises(tb.TestbankFout, match="geen beslissing"):
        tb.evalueer(DMN, "Decision_bestaat_niet", {})
    raising = DMN.replace(b'<text>"CMD"</text>', b"<text>1 / 0</text>", 1)
    [first, *_] = tb.draai(raising, CASES)
    assert not first.geslaagd and first.fout is not None and "faalt" in first.fout
    with pytest.raises(rt.DefinitionError):
        tb.evalueer(DMN.replace(b'<text>"CMD"</text>', b'<text>open("x")</text>', 1), "Decision_ips_tarief", {})
