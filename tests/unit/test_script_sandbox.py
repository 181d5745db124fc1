"""The script sandbox (issue 12, item 1): known escapes are refused at deploy and again at run time, and every
script, condition, expression and DMN cell of our diagrams still evaluates.

Only names that the sandbox had before RestrictedPython are imported at module level, so that this file also
runs against the old hand-written check (the regression tests for the escape quoted in issue 12 fail there).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from tests.support.sandbox import ESCAPES, ISSUE_12_ESCAPE, START
from tests.support.sandbox import process as _process

from process_engine import definitions
from process_engine import runtime as rt
from process_engine.runtime import DefinitionError, EngineError, parse_definition, start_instance
from process_engine.scripting import RestrictedEnvironment, ScriptRejected, check_script

ROOT = Path(__file__).resolve().parents[2]


def _data() -> dict[str, Any]:
    return {"aanvraag": {"aanvraagId": "A-1", "bedrag": 120_000}}


# --------------------------------------------------------------------------- the escape quoted in issue 12


def test_the_escape_quoted_in_issue_12_is_refused_at_deploy_naming_the_script_task() -> None:
    with pytest.raises(DefinitionError) as info:
        parse_definition(_process(script=ISSUE_12_ESCAPE))
    assert {(p.element_id, p.file) for p in info.value.problems} == {("Script_evil", "evil.bpmn")}
    assert any("gi_frame" in p.message for p in info.value.problems)


def test_the_escape_quoted_in_issue_12_is_refused_at_run_time() -> None:
    data = _data()
    with pytest.raises(ScriptRejected):
        RestrictedEnvironment().execute(ISSUE_12_ESCAPE, data)
    assert "proof" not in data


# --------------------------------------------------------------------------- the corpus


def test_the_corpus_holds_at_least_thirty_escapes() -> None:
    assert len(ESCAPES) >= 30
    assert len(set(ESCAPES.values())) == len(ESCAPES)


@pytest.mark.parametrize("source", list(ESCAPES.values()), ids=list(ESCAPES))
def test_escape_is_refused_by_the_deploy_check(source: str) -> None:
    """The same validation the deploy API runs (engine.deploy → parse_definition), naming element, kind, file."""
    with pytest.raises(DefinitionError) as info:
        parse_definition(_process(script=source))
    problems = info.value.problems
    assert problems
    assert {(p.element_id, p.kind, p.file) for p in problems} == {("Script_evil", "scriptTask/script", "evil.bpmn")}
    assert check_script(source)


@pytest.mark.parametrize("source", list(ESCAPES.values()), ids=list(ESCAPES))
def test_escape_is_refused_at_run_time(source: str) -> None:
    data = _data()
    with pytest.raises(ScriptRejected):
        RestrictedEnvironment().execute(source, data)
    assert "proof" not in data


BYPASSED = [
    ("script", ISSUE_12_ESCAPE, "Script_evil"),
    ("script", ESCAPES["getattr-computed-name"], "Script_evil"),
    ("pre", ESCAPES["subclasses-via-tuple-literal"], "Task_evil"),
    ("pre", ESCAPES["generator-gi-frame-f-back"], "Task_evil"),
    ("post", ESCAPES["str-format-attribute-walk"], "Task_evil"),
    ("post", ESCAPES["exception-traceback"], "Task_evil"),
    ("condition", "[g.gi_frame.f_back for g in [(x for x in [1])]] != []", "Gateway_evil"),
    ("condition", '"{0.__class__}".format(x) != ""', "Gateway_evil"),
    ("condition", "().__class__.__bases__[0].__subclasses__() != []", "Gateway_evil"),
]


@pytest.mark.parametrize(("place", "source", "element_id"), BYPASSED, ids=[f"{p}-{i}" for i, (p, *_) in
                                                                          enumerate(BYPASSED)])
def test_runtime_refuses_again_when_the_deploy_check_was_bypassed(
        monkeypatch: pytest.MonkeyPatch, place: str, source: str, element_id: str) -> None:
    """Defence in depth: a definition that never went through the deploy check (say, written into the
    database by hand) still cannot run the code: every evaluation compiles through the sandbox."""
    monkeypatch.setattr(definitions, "_code_problems", lambda root, file: iter(()))
    monkeypatch.setattr(definitions, "_DEFINITION_CACHE", OrderedDict())  # keep the unchecked parse out of the cache
    parsed = parse_definition(_process(**{place: source}))
    with pytest.raises(EngineError) as info:
        start_instance(parsed, START, {"aanvraag": {"aanvraagId": "A-1"}}, case_id=f"bypass-{place}")
    assert str(info.value).startswith(f"{element_id}: ")
    assert any(isinstance(cause, ScriptRejected) for cause in _causes(info.value)), repr(info.value)


def _causes(exc: BaseException | None) -> list[BaseException]:
    """The exception, what caused it, and what Spiff wrapped in it (``WorkflowTaskException.exception``)."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = getattr(exc, "exception", None) or exc.__cause__ or exc.__context__
    return seen


def test_the_bypass_above_runs_harmless_code_so_it_can_fail() -> None:
    """The bypassed definition with harmless code completes: the refusals above come from the sandbox."""
    parsed = parse_definition(_process())
    workflow, result = start_instance(parsed, START, {}, case_id="harmless")
    assert result.completed
    assert {"x": 1, "y": 1, "z": 1}.items() <= workflow.data.items()  # script, preScript and postScript ran


# --------------------------------------------------------------------------- every kind of code, every cell


DMN = (ROOT / "tests" / "bpmn" / "test_decision.dmn").read_text()


def test_deploy_problems_name_every_refused_element_with_its_kind_and_file() -> None:
    files = _process(
        script='proof = "{0.__class__}".format(aanvraag)',
        pre="proof = ().__class__.__bases__[0].__subclasses__()",
        post="proof = [x async for x in aanvraag]",
        condition="(x for x in [1]).gi_frame",
    )
    dmn = (DMN.replace("<text>&lt;= 500000</text>", "<text>&lt;= 500000 if getattr(x, 'y') else 0</text>")
              .replace('<text>"handmatig"</text>', "<text>vars()</text>")
              .replace('<text>aanvraag["bedrag"]</text>', "<text>aanvraag.__class__</text>"))
    assert dmn.count("getattr") == dmn.count("vars()") == dmn.count("__class__") == 1
    with pytest.raises(DefinitionError) as info:
        parse_definition({**files, "d.dmn": dmn.encode()})
    found = {(p.element_id, p.kind, p.file) for p in info.value.problems}
    assert found == {
        ("Script_evil", "scriptTask/script", "evil.bpmn"),
        ("Task_evil", "subProcess/preScript", "evil.bpmn"),
        ("Task_evil", "subProcess/postScript", "evil.bpmn"),
        ("Flow_evil", "sequenceFlow/conditionExpression", "evil.bpmn"),
        ("InputEntry_automatisch", "inputEntry", "d.dmn"),
        # Spiff evaluates 'aanvraag.__class__> 500000': the refused input expression is part of each entry
        ("InputEntry_handmatig", "inputEntry", "d.dmn"),
        ("OutputEntry_handmatig", "outputEntry", "d.dmn"),
        ("InputExpression_bedrag", "inputExpression", "d.dmn"),
    }


def test_a_condition_is_checked_as_the_expression_spiff_evaluates() -> None:
    """A statement is valid in a script but not in a condition: refused at deploy, not at the first case."""
    with pytest.raises(DefinitionError) as info:
        parse_definition(_process(condition="x = 1"))
    [problem] = info.value.problems
    assert (problem.element_id, problem.kind) == ("Flow_evil", "sequenceFlow/conditionExpression")
    assert problem.message.startswith("syntax error on line 1")
    parse_definition(_process(script="x = 1", condition="x == 1"))


def test_a_dmn_input_entry_is_checked_as_spiff_composes_it() -> None:
    """Spiff appends an entry that starts with an operator to the input expression ('x' + '<= 5'), puts
    others in '(x) == (entry)' and evaluates a '?' entry as it stands: the deploy check sees the same."""
    root = etree.fromstring(DMN.replace("<text>&gt; 500000</text>", "<text>? &gt; 5 and ? &lt; 9</text>").encode())
    codes = {element_id: code for element_id, _kind, code in rt._embedded_code(root)}
    assert codes["InputEntry_automatisch"] == 'aanvraag["bedrag"]<= 500000'
    assert codes["InputEntry_handmatig"] == "dmninputexpr > 5 and dmninputexpr < 9"
    assert codes["OutputEntry_automatisch"] == '"toekennen"'


# --------------------------------------------------------------------------- run-time guards


@pytest.mark.parametrize(
    "source",
    [
        "g = (x for x in [1])\nfor v in g:\n    proof = v",  # iteration over a generator
        'proof = "{0.x}".format(aanvraag)',  # str.format
        "proof = einde_van_dag.func_globals",  # attribute of a function
        "proof = einde_van_dag.x",
        "proof = str.mro()",  # attribute of a type
        "proof = einde_van_dag[0]",  # item of a function
        "proof = [v for v in einde_van_dag]",
        "a, b = (x for x in [1, 2])",  # unpacking a generator
    ],
)
def test_guards_refuse_at_run_time_what_restrictedpython_alone_lets_through(source: str) -> None:
    """Compiled with RestrictedPython's own policy (without ours) and run with our guards and builtins:
    the guards are a second line behind the static policy."""
    from RestrictedPython.compile import compile_restricted_exec

    from process_engine.scripting import _script_globals

    result = compile_restricted_exec(source, filename="<string>")
    assert result.code is not None, result.errors
    namespace = _script_globals(_data(), None)
    with pytest.raises(ScriptRejected):
        exec(result.code, namespace)
    assert "proof" not in namespace


def test_guards_on_the_objects_an_escape_would_reach() -> None:
    import os
    import sys

    from process_engine.scripting import guarded_getattr, guarded_getitem, guarded_getiter

    generator = (x for x in [1])
    frame = sys._getframe()
    for obj, name in [(generator, "gi_frame"), (generator, "gi_code"), (frame, "f_back"), (frame, "f_lineno"),
                      ("x", "format"), ("x", "format_map"), (str, "mro"), (int, "real"), ({}, "__class__"),
                      (len, "x"), (os, "popen")]:
        with pytest.raises(ScriptRejected):
            guarded_getattr(obj, name)
    for obj in (os.environ, generator, iter([1]), frame, len):
        with pytest.raises(ScriptRejected):
            guarded_getiter(obj)
    with pytest.raises(ScriptRejected):
        guarded_getitem(os.environ, "PATH")
    assert guarded_getattr({"a": 1}, "get")("a") == 1
    assert guarded_getitem({"a": [1, 2]}, "a") == [1, 2]
    assert list(guarded_getiter((1, 2))) == [1, 2]


def test_writes_only_into_lists_and_dicts() -> None:
    env = RestrictedEnvironment()
    data: dict[str, Any] = {"lijst": [1], "kaart": {"a": 1}}
    env.execute('lijst[0] = 2\nkaart["b"] = 3\ndel kaart["a"]', data)
    assert data == {"lijst": [2], "kaart": {"b": 3}}
    with pytest.raises(TypeError):
        env.execute('tekst = "abc"\ntekst[0] = "x"', {})
    with pytest.raises(TypeError):
        env.execute("einde_van_dag.x = 1", {})


def test_what_diagrams_may_use_keeps_working() -> None:
    env = RestrictedEnvironment()
    data: dict[str, Any] = {"bedragen": [300, 100, 200], "aanvraag": {"regels": [{"b": 1}, {"b": 2}]}}
    env.execute(
        "totaal = sum(bedragen)\n"
        "hoogste = max(bedragen)\n"
        "gesorteerd = sorted(bedragen, key=lambda v: -v)\n"
        "paren = [(i, b) for i, b in enumerate(bedragen)]\n"
        "samen = dict(zip(['a', 'b'], [1, 2]))\n"
        "a, b = 1, 2\n"
        "n = 0\n"
        "for regel in aanvraag['regels']:\n"
        "    n += regel['b']\n"
        "tekst = f'{totaal} cent, ' + ', '.join([str(b) for b in bedragen]).upper()\n"
        "reeks = list(range(3))\n"
        "eind = einde_looptijd('2024-02-01', 24)\n",
        data,
    )
    assert (data["totaal"], data["hoogste"], data["gesorteerd"]) == (600, 300, [300, 200, 100])
    assert data["paren"] == [(0, 300), (1, 100), (2, 200)] and data["samen"] == {"a": 1, "b": 2}
    assert (data["a"], data["b"], data["n"], data["reeks"]) == (1, 2, 3, [0, 1, 2])
    assert data["tekst"] == "600 cent, 300, 100, 200" and data["eind"] == "2026-01-31"
    assert not any(key.startswith("_") for key in data), "RestrictedPython's temporaries must not become task data"
    with pytest.raises(ValueError, match="range"):
        env.evaluate("list(range(10 ** 12))", {})


def test_compiled_code_is_cached_by_source_text() -> None:
    from process_engine.scripting import _compile

    source = 'besluit == "cache-test"'
    before = _compile.cache_info()
    env = RestrictedEnvironment()
    for _ in range(50):
        assert env.evaluate(source, {"besluit": "cache-test"}) is True
    after = _compile.cache_info()
    assert after.misses - before.misses == 1
    assert after.hits - before.hits == 49


# --------------------------------------------------------------------------- every expression in our diagrams


PLAUSIBLE: dict[str, Any] = {
    "aanvraag": {
        "aanvraagId": "A-1", "aanvraag_id": "A-1", "gemeenteCode": "0957", "woongemeenteCode": "0957",
        "trajectType": "CMD", "aanvraagdatum": "2026-03-03", "ontvangenOp": "2026-03-03T10:00:00+01:00",
        "ggzKvkNummer": "12345678", "gewensteStartdatum": "2026-04-01", "bedrag": 120_000,
    },
    "toetsing": {
        "regeling": "ips-gemeenten-2023", "bevoegd": True, "bevoegdeGemeente": "0957", "beslisdatum": "2026-04-28",
        "beslistermijnEinde": "2026-04-27", "hersteltermijn": "P14D",
        "betaalschema": [{"moment": "toekenning", "percentage": 100}], "terugvorderingstermijnJaren": 5,
    },
    "volledigheid": {"volledig": True, "ontbrekend": [{"omschrijving": "cv"}, "diploma"],
                     "volledigOntvangenOp": "2026-03-03", "criteria": []},
    "herstelverzoek": {"uiterlijk": "2026-03-17", "gevraagdOp": "2026-03-03"},
    "aanvulling": {"aanvraagId": "A-1", "aangevuldOp": "2026-03-10T09:00:00+01:00"},
    "reservering": {"gereserveerd": True, "weigeringsgronden": [], "financiering": "gemeente"},
    "beschikking": {"beschikkingId": "B-1", "datum": "2026-04-01"},
    "besluit": "toekennen", "motivering": "Voldoet aan de voorwaarden.", "ondertekenaar": "h.jansen",
    "nieuweBeslisdatum": "2026-05-26", "verlengingsverzoek": {"maanden": 6},
    "verlengingstoets": {"toegestaan": True, "weigeringsgronden": [], "nieuweEinddatum": "2028-09-30"},
    "stopbericht": {"einddatum": "2027-06-30"}, "vaststelling": {"vastgesteldCents": 800_000},
    "verrekening": {"betaaldCents": 800_000, "saldoCents": -5_000}, "betaling": {"totaalCents": 800_000},
    "tarief_cents": 800_000, "looptijd_maanden": 24, "gemeenteCode": "0957", "ggzKvkNummer": "12345678",
    "vorigeGemeente": "0957", "beslisdatum": "2026-04-28", "opgeschorte_dagen": 0, "startdatum": "2026-04-01",
    "einddatum": "2028-03-31",
    "verlengingen": 0, "werkelijke_einddatum": None, "afwijzingsgronden": [], "verlengingsgronden": [],
    "dossier_nummer": "D-1",
    "besluitvormer": "uwv", "instemming": "verleend", "instemmingKenmerk": "TV-1", "instemmingDatum": "2019-05-20",
    "instemmingGemeente": {"verleend": True, "kenmerk": "TV-1", "datum": "2019-05-20", "gemeenteCode": "0957"},
}  # fmt: skip
_SCRIPT_KINDS = ("/script", "/preScript", "/postScript")


def _diagram_code() -> list[tuple[str, str | None, str, str]]:
    """(file, element id, kind, code) for every piece of code in our diagrams, found as the deploy check does."""
    found = []
    for pattern in ("bpmn/*.bpmn", "bpmn/*.dmn", "tests/bpmn/*.bpmn", "tests/bpmn/*.dmn"):
        for path in sorted(ROOT.glob(pattern)):
            root = etree.fromstring(path.read_bytes())
            for element_id, kind, code in rt._embedded_code(root):
                found.append((str(path.relative_to(ROOT)), element_id, kind, code))
    return found


DIAGRAM_CODE = _diagram_code()


def test_the_diagrams_hold_the_code_we_expect_to_evaluate() -> None:
    files = {file for file, *_ in DIAGRAM_CODE}
    assert files == {"bpmn/ips_traject.bpmn", "bpmn/ips_tarieven.dmn", "tests/bpmn/test_process.bpmn",
                     "tests/bpmn/test_decision.dmn"}
    kinds = {kind for *_, kind, _code in DIAGRAM_CODE}
    assert {"scriptTask/script", "sequenceFlow/conditionExpression", "inputEntry", "outputEntry",
            "inputExpression"} <= kinds
    assert any(kind.endswith("/postScript") for kind in kinds)
    assert len(DIAGRAM_CODE) > 250


@pytest.mark.parametrize(
    ("file", "element_id", "kind", "code"), DIAGRAM_CODE, ids=[f"{f}#{e}" for f, e, _k, _c in DIAGRAM_CODE]
)
def test_every_script_condition_expression_and_dmn_cell_of_our_diagrams_evaluates(
        file: str, element_id: str | None, kind: str, code: str) -> None:
    assert check_script(code) == [], (file, element_id)
    env = RestrictedEnvironment()
    data = {key: value for key, value in PLAUSIBLE.items()}
    if kind.endswith(_SCRIPT_KINDS):
        env.execute(code, data)
        assert set(PLAUSIBLE) <= set(data)
    else:
        external = {"dmninputexpr": 5} if "dmninputexpr" in code else None
        env.evaluate(code, data, external)
