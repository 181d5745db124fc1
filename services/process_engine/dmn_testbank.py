"""The DMN test bench: evaluate a decision table for sample inputs with the engine's own DMN evaluation, and run a
table's test cases before it is deployed.

A decision is evaluated exactly as a business rule task in a case evaluates it: SpiffWorkflow's parser and DMN
engine, with every cell compiled by the script sandbox (``scripting``). The table is wrapped in a one-task process
(start, business rule task, end). Test inputs are given per input column (by its id), so each column's input
expression is replaced by a variable holding the test value; the rules themselves are evaluated unchanged.

Test cases live next to their table in git (``bpmn/<tabel>.testbank.json``, see :func:`testbank_naam`) and with
every deployed version in the engine (the definition document's ``testbank``). A deployment runs the cases it
brings for each of its DMN files, or else the ones stored with the newest deployed version of that file; one
failing case refuses the whole deployment (:class:`TestbankGefaald`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState

from process_engine import runtime as rt
from process_engine.scripting import RestrictedScriptEngine, ScriptRejected, ScriptTimeout
from servicekit.auth import PROCESBEHEERDER, PrincipalDep, require_admin_role
from servicekit.http import API_PREFIX, problem

DMN_NS: Final = "https://www.omg.org/spec/DMN/20191111/MODEL/"
TESTBANK_SUFFIX: Final = ".testbank.json"
#: At most this many cases per table and per run: a test bench, not a load test.
MAX_GEVALLEN: Final = 500
_INVOER_PREFIX: Final = "testinvoer"
_WIKKEL_BESTAND: Final = "dmn-testbank.bpmn"
# Ids not named Start/End: those are SpiffWorkflow's own task specs of every process.
_WIKKEL: Final = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="Definitions_dmn_testbank"
    targetNamespace="https://ipsflow.nl/bpmn/dmn-testbank">
  <bpmn:process id="dmn_testbank" isExecutable="true">
    <bpmn:startEvent id="Testbank_start"><bpmn:outgoing>Testbank_heen</bpmn:outgoing></bpmn:startEvent>
    <bpmn:businessRuleTask id="Testbank_beslissing">
      <bpmn:extensionElements><spiffworkflow:calledDecisionId>{beslissing}</spiffworkflow:calledDecisionId>
      </bpmn:extensionElements>
      <bpmn:incoming>Testbank_heen</bpmn:incoming><bpmn:outgoing>Testbank_terug</bpmn:outgoing>
    </bpmn:businessRuleTask>
    <bpmn:endEvent id="Testbank_einde"><bpmn:incoming>Testbank_terug</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="Testbank_heen" sourceRef="Testbank_start" targetRef="Testbank_beslissing" />
    <bpmn:sequenceFlow id="Testbank_terug" sourceRef="Testbank_beslissing" targetRef="Testbank_einde" />
  </bpmn:process>
</bpmn:definitions>
"""
_SCRIPT_ENGINE: Final = RestrictedScriptEngine()


class Testgeval(BaseModel):
    """One sample: the value of each input column (by the column's id) and the outputs expected (by output name);
    an empty ``verwacht`` means that no rule may match."""

    model_config = ConfigDict(extra="forbid")
    naam: str = Field(min_length=1, max_length=200)
    beslissing: str = Field(min_length=1, max_length=200, description="Id van de beslissing (decision) in de DMN.")
    invoer: dict[str, Any] = Field(description="Id van de invoerkolom → testwaarde.")
    verwacht: dict[str, Any] = Field(description="Naam van de uitvoer → verwachte waarde; leeg: geen regel past.")


class TestbankFout(ValueError):
    """The table cannot be evaluated for these inputs (unknown decision or column, an error in a cell)."""


@dataclass(frozen=True)
class Uitkomst:
    naam: str
    geslaagd: bool
    uitvoer: dict[str, Any]
    verwacht: dict[str, Any]
    fout: str | None = None

    def view(self) -> dict[str, Any]:
        return {"naam": self.naam, "geslaagd": self.geslaagd, "uitvoer": self.uitvoer, "verwacht": self.verwacht,
                "fout": self.fout}


class TestbankGefaald(rt.DefinitionError):
    """A deployment whose DMN test bench fails: nothing was stored."""

    def __init__(self, uitkomsten: Mapping[str, Sequence[Uitkomst]]) -> None:
        self.uitkomsten = {bestand: list(lijst) for bestand, lijst in uitkomsten.items()}
        super().__init__([rt.Problem(u.naam, testbank_naam(bestand), u.fout or _verschil(u))
                          for bestand, lijst in self.uitkomsten.items() for u in lijst if not u.geslaagd])


def testbank_naam(dmn_bestand: str) -> str:
    """``ips_tarieven.dmn`` → ``ips_tarieven.testbank.json``: the cases of a table, next to it."""
    return Path(dmn_bestand).stem + TESTBANK_SUFFIX


def lees_testbank(tekst: str | bytes) -> list[Testgeval]:
    """The cases of a testbank file (``{"testgevallen": [...]}``)."""
    data = json.loads(tekst)
    return [Testgeval.model_validate(g) for g in data.get("testgevallen", [])][:MAX_GEVALLEN]


def schrijf_testbank(dmn_bestand: str, gevallen: Sequence[Testgeval]) -> str:
    """The testbank file as the studio offers it for download (and as it is kept in git)."""
    return json.dumps({"tabel": dmn_bestand, "testgevallen": [g.model_dump() for g in gevallen]},
                      ensure_ascii=False, indent=2) + "\n"


def uit_map(directory: str, bestanden: Mapping[str, bytes]) -> dict[str, list[Testgeval]]:
    """The testbank files next to the DMN files of a directory (the engine's start-up deployment of ``bpmn/``)."""
    folder = Path(directory)
    return {naam: lees_testbank((folder / testbank_naam(naam)).read_bytes()) for naam in bestanden
            if naam.endswith(".dmn") and (folder / testbank_naam(naam)).is_file()}


def _verschil(u: Uitkomst) -> str:
    if not u.verwacht:
        return f"verwacht: geen regel; kreeg {json.dumps(u.uitvoer, ensure_ascii=False)}"
    if not u.uitvoer:
        return f"verwacht {json.dumps(u.verwacht, ensure_ascii=False)}; geen regel past"
    return (f"verwacht {json.dumps(u.verwacht, ensure_ascii=False)}; "
            f"kreeg {json.dumps({k: u.uitvoer.get(k) for k in u.verwacht}, ensure_ascii=False)}")


def _testtabel(dmn: bytes, beslissing: str) -> tuple[bytes, dict[str, str], list[str]]:
    """The table with each input expression of ``beslissing`` replaced by a variable; the variable per column id
    and the decision's output names."""
    try:
        root = etree.fromstring(dmn, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise TestbankFout(f"de DMN is geen geldige XML: {exc}") from exc
    decision = next((d for d in root.iter(f"{{{DMN_NS}}}decision") if d.get("id") == beslissing), None)
    if decision is None:
        raise TestbankFout(f"de DMN heeft geen beslissing '{beslissing}'")
    variabelen: dict[str, str] = {}
    for i, kolom in enumerate(decision.iter(f"{{{DMN_NS}}}input")):
        tekst = kolom.find(f"{{{DMN_NS}}}inputExpression/{{{DMN_NS}}}text")
        if tekst is None:
            raise TestbankFout(f"invoerkolom {kolom.get('id')} heeft geen expressie")
        variabelen[kolom.get("id") or f"kolom{i}"] = tekst.text = f"{_INVOER_PREFIX}{i}"
    uitvoer = [o.get("name") or o.get("id") or "" for o in decision.iter(f"{{{DMN_NS}}}output")]
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8"), variabelen, uitvoer


def evalueer(dmn: bytes, beslissing: str, invoer: Mapping[str, Any], bestand: str = "tabel.dmn") -> dict[str, Any]:
    """The outputs of ``beslissing`` for ``invoer`` (column id → value): ``{}`` when no rule matches.

    Raises rt.DefinitionError when the sandbox refuses a cell (or the table does not parse) and TestbankFout
    when the inputs do not fit the table or a cell fails on them."""
    tabel, variabelen, uitvoer = _testtabel(dmn, beslissing)
    onbekend = sorted(set(invoer) - set(variabelen))
    if onbekend:
        raise TestbankFout(f"onbekende invoerkolom(men): {', '.join(onbekend)}")
    parsed = rt.parse_definition({_WIKKEL_BESTAND: _WIKKEL.format(beslissing=beslissing).encode(),
                                  bestand: tabel})
    workflow = BpmnWorkflow(parsed.spec, dict(parsed.subprocess_specs), script_engine=_SCRIPT_ENGINE)
    start = workflow.get_tasks(state=TaskState.READY)[0]
    start.data.update({variabelen[kolom]: invoer.get(kolom) for kolom in variabelen})
    try:
        workflow.do_engine_steps()
    except (SpiffWorkflowException, ScriptRejected, ScriptTimeout) as exc:
        raise TestbankFout(f"de tabel faalt op deze invoer: {exc}") from exc
    data = workflow.last_task.data if workflow.last_task is not None else {}
    return {naam: data[naam] for naam in uitvoer if naam in data}


def draai(dmn: bytes, gevallen: Sequence[Testgeval], bestand: str = "tabel.dmn") -> list[Uitkomst]:
    """Every case evaluated; a case passes when each expected output has the expected value (and, with nothing
    expected, when no rule matches). Raises rt.DefinitionError when the sandbox refuses the table."""
    uit: list[Uitkomst] = []
    for geval in gevallen:
        try:
            uitvoer = evalueer(dmn, geval.beslissing, geval.invoer, bestand)
        except TestbankFout as exc:
            uit.append(Uitkomst(geval.naam, False, {}, geval.verwacht, str(exc)))
            continue
        geslaagd = (uitvoer == {} if not geval.verwacht
                    else all(k in uitvoer and uitvoer[k] == v for k, v in geval.verwacht.items()))
        uit.append(Uitkomst(geval.naam, geslaagd, uitvoer, geval.verwacht))
    return uit


async def opgeslagen(definitions: Any, bestand: str, content_hash: str | None = None) -> list[Testgeval] | None:
    """The cases stored for DMN file ``bestand``: with version ``content_hash``, or else with the newest deployed
    version that has cases for a file of that name; None when no version has any."""
    docs = await definitions.collection.find({}, {"testbank": 1, "deployed_at": 1}).to_list(None)
    docs.sort(key=lambda d: (d["_id"] == content_hash, d.get("deployed_at") is not None, d.get("deployed_at")),
              reverse=True)
    for doc in docs:
        for item in doc.get("testbank") or []:
            if item.get("bestand") == bestand:
                return [Testgeval.model_validate(g) for g in item.get("gevallen", [])]
    return None


async def poort(definitions: Any, bestanden: Mapping[str, bytes],
                meegegeven: Mapping[str, Sequence[Testgeval]] | None) -> dict[str, list[Testgeval]]:
    """Run the test bench of every DMN file of a deployment before it is stored: the cases it brings, else those
    stored with the newest version of that file. Returns the cases used per file (stored with the version by
    :func:`bewaar`); raises TestbankGefaald when one fails."""
    gebruikt: dict[str, list[Testgeval]] = {}
    for naam in sorted(n for n in bestanden if n.endswith(".dmn")):
        gevallen = list(meegegeven[naam]) if meegegeven and naam in meegegeven else await opgeslagen(definitions,
                                                                                                      naam)
        if gevallen:
            gebruikt[naam] = gevallen
    uitkomsten = {naam: await asyncio.to_thread(draai, bestanden[naam], gevallen, naam)
                  for naam, gevallen in gebruikt.items()}
    if any(not u.geslaagd for lijst in uitkomsten.values() for u in lijst):
        raise TestbankGefaald(uitkomsten)
    return gebruikt


async def bewaar(definitions: Any, content_hash: str, gebruikt: Mapping[str, Sequence[Testgeval]]) -> None:
    """Keep the cases a deployment passed with its version (a list: FerretDB refuses dots in keys)."""
    if gebruikt:
        await definitions.collection.update_one({"_id": content_hash}, {"$set": {"testbank": [
            {"bestand": naam, "gevallen": [g.model_dump() for g in gevallen]} for naam, gevallen in gebruikt.items()]}})


# --------------------------------------------------------------------------- HTTP (the studio's test bench)


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Tabel(_Model):
    dmn: str = Field(min_length=1, max_length=1_000_000, description="De DMN (XML) zoals hij nu in de editor staat.")
    bestand: str = Field(default="tabel.dmn", pattern=r"^[A-Za-z0-9_.-]{1,200}\.dmn$")


class Evaluatie(Tabel):
    beslissing: str = Field(min_length=1, max_length=200)
    invoer: dict[str, Any] = Field(description="Id van de invoerkolom → waarde.")


class Testrun(Tabel):
    testgevallen: list[Testgeval] = Field(max_length=MAX_GEVALLEN)


class EvaluatieAntwoord(BaseModel):
    uitvoer: dict[str, Any] = Field(description="Naam van de uitvoer → waarde; leeg: geen regel past.")
    regelPast: bool


class UitkomstView(BaseModel):
    naam: str
    geslaagd: bool
    uitvoer: dict[str, Any]
    verwacht: dict[str, Any]
    fout: str | None


class TestrunAntwoord(BaseModel):
    geslaagd: bool
    uitkomsten: list[UitkomstView]


class TestbankBestand(BaseModel):
    bestand: str
    testgevallen: list[Testgeval]


def _geweigerd(exc: rt.DefinitionError) -> JSONResponse:
    return problem(400, "DMN geweigerd", "De tabel kan niet worden geëvalueerd; zie invalidParams.",
                   type_="https://ipsflow.nl/problems/procesdefinitie-ongeldig",
                   invalid_params=[{"name": p.element_id or p.file or "dmn", "code": "script" if p.kind else "dmn",
                                    "reason": p.message} for p in exc.problems])


def dmn_testbank_routes(app: FastAPI) -> None:
    """The studio's DMN test bench; only a procesbeheerder uses it. Nothing is stored."""

    @app.post(f"{API_PREFIX}/dmn/evaluatie", tags=["studio"], response_model=EvaluatieAntwoord)
    async def evaluate(body: Evaluatie, principal: PrincipalDep):  # type: ignore[no-untyped-def]
        """The outputs of one decision for sample inputs, evaluated as a business rule task would."""
        require_admin_role(principal, PROCESBEHEERDER, "DMN-tabellen testen")
        try:
            uitvoer = await asyncio.to_thread(evalueer, body.dmn.encode(), body.beslissing, body.invoer, body.bestand)
        except TestbankFout as exc:
            return problem(400, "Niet te evalueren", str(exc))
        except rt.DefinitionError as exc:
            return _geweigerd(exc)
        return {"uitvoer": uitvoer, "regelPast": bool(uitvoer)}

    @app.post(f"{API_PREFIX}/dmn/testbank", tags=["studio"], response_model=TestrunAntwoord)
    async def run(body: Testrun, principal: PrincipalDep):  # type: ignore[no-untyped-def]
        """Every test case against the table as it is now; the same run that decides whether it may be deployed."""
        require_admin_role(principal, PROCESBEHEERDER, "DMN-tabellen testen")
        try:
            uitkomsten = await asyncio.to_thread(draai, body.dmn.encode(), body.testgevallen, body.bestand)
        except rt.DefinitionError as exc:
            return _geweigerd(exc)
        return {"geslaagd": all(u.geslaagd for u in uitkomsten), "uitkomsten": [u.view() for u in uitkomsten]}

    @app.get(f"{API_PREFIX}/dmn/testbank/{{content_hash}}/{{bestand}}", tags=["studio"], response_model=TestbankBestand)
    async def cases(content_hash: str, bestand: str, request: Request,  # type: ignore[no-untyped-def]
                    principal: PrincipalDep):
        """The test cases of a table in a deployed version (or, without any, of the newest version that has them),
        as the file kept next to the table in git."""
        require_admin_role(principal, PROCESBEHEERDER, "DMN-tabellen testen")
        gevallen = await opgeslagen(request.app.state.pe.engine.definitions, bestand, content_hash)
        return {"bestand": testbank_naam(bestand), "testgevallen": [g.model_dump() for g in gevallen or []]}
