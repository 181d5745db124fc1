"""What the console's studio asks the engine before a deploy: the message catalogue as data, a check of a
definition without storing it (SpiffWorkflow's parser, the script sandbox, the catalogue, the lanes' roles), and
a comparison with a deployed version: elements added, removed and changed, and the running cases that wait in a
removed or changed element (each case judged against its own version)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from process_engine import runtime as rt
from process_engine.bootstrap import load_catalogue
from process_engine.engine import Engine
from servicekit.audit import noteer, verwerking
from servicekit.auth import PROCESBEHEERDER, PrincipalDep, require_admin_role
from servicekit.http import API_PREFIX, problem

BPMN = rt.BPMN_NS
SPIFF = rt.SPIFF_NS
#: Elements the comparison follows one by one; anything else (event definitions, scripts, parameters) is part
#: of the element that holds it.
_GEVOLGD = re.compile(r"(Task|Event|Gateway|subProcess|transaction|callActivity|sequenceFlow|messageFlow|lane|"
                      r"participant|dataObjectReference|dataStoreReference|textAnnotation|association|message|"
                      r"error|signal|escalation)$")
#: BPMN's default attribute values: a modeler leaves them out, a hand-written file may spell them; same meaning.
_STANDAARD = {("cancelActivity", "true"), ("isInterrupting", "true"), ("isForCompensation", "false"),
              ("startQuantity", "1"), ("completionQuantity", "1"), ("parallelMultiple", "false"),
              ("isClosed", "false"), ("gatewayDirection", "Unspecified"), ("instantiate", "false"),
              ("triggeredByEvent", "false"), ("isImmediate", "true"), ("implementation", "##unspecified")}
#: How many affected cases an answer lists (the total is always given).
MAX_ZAKEN = 500


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Ontwerp(_Model):
    bestanden: dict[str, str] = Field(description="Bestandsnaam (.bpmn/.dmn) → XML.", min_length=1)


class Vergelijking(Ontwerp):
    basis_hash: str | None = Field(default=None, min_length=64, max_length=64,
                                   description="De uitgerolde versie om mee te vergelijken; leeg: de laatste.")


class ProbleemView(BaseModel):
    element: str | None
    bestand: str | None
    regel: str = Field(description="bpmn (de parser), sandbox, catalogus of rol")
    melding: str
    soort: str


class ControleAntwoord(BaseModel):
    problemen: list[ProbleemView]


class GewijzigdElement(BaseModel):
    element: str
    wat: list[str] = Field(description="soort, inhoud en/of verbindingen")


class GeraaktElement(BaseModel):
    element: str
    reden: str


class BetrokkenZaak(BaseModel):
    zaak: str
    definitieHash: str
    versie: int | None
    elementen: list[GeraaktElement]


class Basisversie(BaseModel):
    hash: str
    versie: int | None
    procesId: str


class VergelijkingAntwoord(BaseModel):
    basis: Basisversie | None
    procesId: str | None
    toegevoegd: list[str]
    verwijderd: list[str]
    gewijzigd: list[GewijzigdElement]
    zaken: list[BetrokkenZaak] = Field(description=f"De eerste {MAX_ZAKEN}; aantalZaken telt ze alle.")
    aantalZaken: int


# --------------------------------------------------------------------------- the catalogue as data


def _zonder_haakjes(tekst: str) -> str:
    while True:
        korter = re.sub(r"\([^()]*\)", "", tekst)
        if korter == tekst:
            return tekst
        tekst = korter


def _namen(cel: str) -> list[str]:
    """Parameter names of a catalogue cell: 'aanvraag_id, beslisdatum and opgeschorte_dagen (uitleg)'."""
    namen = []
    for deel in re.split(r",| and ", _zonder_haakjes(cel)):
        woord = deel.strip().strip("`")
        if re.fullmatch(r"[a-z][a-z0-9_]*", woord):
            namen.append(woord)
    return namen


def catalogus(path: str) -> dict[str, list[dict[str, Any]]]:
    """The catalogue's commands (type, handled by, parameters, result variable and its fields) and events (type,
    published by, data) from its Markdown tables, up to the admin commands (never in a diagram)."""
    file = Path(path) if path else None
    if file is None or not file.is_file():
        return {"commandos": [], "gebeurtenissen": []}
    tekst = file.read_text().split("\n## Beheeropdrachten")[0]
    commandos: dict[str, dict[str, Any]] = {}
    gebeurtenissen: dict[str, dict[str, Any]] = {}
    soort = ""
    for regel in tekst.splitlines():
        if not regel.startswith("|"):
            soort = ""
            continue
        cellen = [c.strip() for c in regel.strip().strip("|").split("|")]
        if cellen[0] == "message (type)":
            soort = "commando" if "parameters" in cellen else "gebeurtenis"
            continue
        match = re.fullmatch(r"`(ips\.[a-z0-9_.-]+\.v[0-9]+)`", cellen[0])
        if not soort or match is None or len(cellen) < 3:
            continue
        naam = match.group(1)
        if soort == "commando" and len(cellen) >= 4:
            resultaat = re.match(r"`([A-Za-z_][A-Za-z0-9_]*)`", cellen[3])
            velden = re.sub(r"\s+,", ",", _zonder_haakjes(cellen[3].split(":", 1)[-1])).strip()
            commandos.setdefault(naam, {"type": naam, "door": cellen[1], "parameters": _namen(cellen[2]),
                                        "resultaat": resultaat.group(1) if resultaat else None,
                                        "velden": velden if resultaat else ""})
        elif soort == "gebeurtenis":
            gebeurtenissen.setdefault(naam, {"type": naam, "door": cellen[1], "data": cellen[2]})
    return {"commandos": sorted(commandos.values(), key=lambda c: c["type"]),
            "gebeurtenissen": sorted(gebeurtenissen.values(), key=lambda g: g["type"])}


# --------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Probleem:
    element: str | None
    bestand: str | None
    regel: str  # bpmn (parser), sandbox, catalogus, rol
    melding: str
    soort: str = ""

    def view(self) -> dict[str, Any]:
        return {"element": self.element, "bestand": self.bestand, "regel": self.regel, "melding": self.melding,
                "soort": self.soort}


def _xml(data: bytes) -> Any:
    return etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False, no_network=True))


def _ontwerpregels(root: Any, bestand: str, commandos: set[str] | None, rollen: set[str]) -> Iterator[Probleem]:
    """Our own rules (the studio's bpmnlint rules say the same in the browser): a service task names a catalogued
    command (``commandos`` None: no catalogue configured, any command); a user task lies in a lane that names a
    role."""
    for taak in root.iter(f"{{{BPMN}}}serviceTask"):
        operator = taak.find(f"{{{BPMN}}}extensionElements/{{{SPIFF}}}serviceTaskOperator")
        naam = operator.get("id") if operator is not None else None
        if not naam:
            yield Probleem(taak.get("id"), bestand, "catalogus", "Deze servicetaak noemt geen opdracht uit de "
                                                                 "berichtencatalogus.")
        elif commandos is not None and naam not in commandos:
            yield Probleem(taak.get("id"), bestand, "catalogus",
                           f"De opdracht '{naam}' staat niet in de berichtencatalogus (bpmn/README.md).")
    lanes = {ref.text.strip(): lane.get("name") or "" for lane in root.iter(f"{{{BPMN}}}lane")
             for ref in lane.findall(f"{{{BPMN}}}flowNodeRef") if ref.text}
    for taak in root.iter(f"{{{BPMN}}}userTask"):
        lane = lanes.get(taak.get("id") or "")
        if lane is None:
            yield Probleem(taak.get("id"), bestand, "rol", "Deze gebruikerstaak ligt in geen lane; de lane noemt "
                                                           "de rol die de taak mag doen.")
        elif lane.strip().lower() not in rollen:
            yield Probleem(taak.get("id"), bestand, "rol",
                           f"De lane '{lane}' noemt geen bekende rol ({', '.join(sorted(rollen))}).")


def controleer(bestanden: Mapping[str, bytes], berichten: set[str] | None, commandos: set[str] | None,
               rollen: set[str]) -> list[Probleem]:
    """Every problem that stops a deploy: the engine's own deploy check (SpiffWorkflow's parser, the script
    sandbox, the message catalogue, form schemas) and our rules. Nothing is stored."""
    problemen: list[Probleem] = []
    for naam, data in sorted(bestanden.items()):
        if not naam.endswith(".bpmn"):
            continue
        try:
            root = _xml(data)
        except etree.XMLSyntaxError:
            continue  # the parser below reports it
        problemen.extend(_ontwerpregels(root, naam, commandos, rollen))
    try:
        rt.parse_definition(bestanden, berichten)
    except rt.DefinitionError as exc:
        problemen.extend(van_parser(exc))
    return problemen


def van_parser(exc: rt.DefinitionError) -> list[Probleem]:
    return [Probleem(p.element_id, p.file, "sandbox" if p.kind else "bpmn", p.message, p.kind or "")
            for p in exc.problems]


def geweigerd(problemen: list[Probleem]) -> JSONResponse:
    """A refused deploy as problem+json: per problem the element (else the file), the file, the rule (``code``:
    bpmn, script for what the sandbox refuses, catalogus, rol) and the message."""
    return problem(400, "Procesdefinitie geweigerd", "De definitie is niet uitgerold; zie invalidParams.",
                   type_="https://ipsflow.nl/problems/procesdefinitie-ongeldig",
                   invalid_params=[{"name": p.element or p.bestand or "definitie", "file": p.bestand or "",
                                    # kind (e.g. scriptTask/script, inputEntry) only for refused code
                                    "code": "script" if p.regel == "sandbox" else p.regel, "kind": p.soort,
                                    "reason": p.melding} for p in problemen])


class Uitrolcontrole:
    """The checks before every deploy, whichever way it comes (the studio, the API and so ``ipsflow bpmn deploy``,
    the start-up deploy of ``bpmn/``): one catalogue file (empty: no catalogue, as the engine's own check) and the
    roles a lane can name."""

    def __init__(self, catalogue_file: str, lane_roles: Mapping[str, str]) -> None:
        self.gegevens = catalogus(catalogue_file)
        self.berichten = load_catalogue(catalogue_file)
        self.commandos = {c["type"] for c in self.gegevens["commandos"]} if self.berichten is not None else None
        self.rollen = dict(lane_roles)

    def problemen(self, bestanden: Mapping[str, bytes]) -> list[Probleem]:
        return controleer(bestanden, self.berichten, self.commandos, set(self.rollen))


# --------------------------------------------------------------------------- comparison


def _uitvoerbaar_proces(bestanden: Mapping[str, bytes]) -> str | None:
    for naam, data in sorted(bestanden.items()):
        if naam.endswith(".bpmn"):
            for proces in _xml(data).iter(f"{{{BPMN}}}process"):
                if proces.get("isExecutable") == "true":
                    return str(proces.get("id"))
    return None


def _gevolgd(node: Any) -> bool:
    qname = etree.QName(node)
    return qname.namespace == BPMN and bool(node.get("id")) and bool(_GEVOLGD.search(qname.localname))


def _vorm(node: Any, verbindingen: bool, lane: str | None = None) -> Any:
    """What an element means, without its layout and without the followed elements inside it (each compared on
    its own); with ``verbindingen`` only its incoming and outgoing flows, else everything but those. A lane's
    members belong to the member (``lane``: the name of the lane it lies in), not to the lane."""
    attrs = {k: v for k, v in sorted(node.attrib.items()) if (k, v) not in _STANDAARD}
    kopie = etree.Element(node.tag, {} if verbindingen else attrs)
    kopie.text = "" if verbindingen else (node.text or "").strip()
    if lane is not None and not verbindingen:
        kopie.set("lane", lane)
    for kind in node:
        if not isinstance(kind.tag, str) or _gevolgd(kind) or etree.QName(kind).localname == "flowNodeRef":
            continue
        is_verbinding = etree.QName(kind).localname in ("incoming", "outgoing")
        if is_verbinding == verbindingen:
            kopie.append(_vorm(kind, False) if not verbindingen else _kale_kopie(kind))
    return kopie


def _kale_kopie(node: Any) -> Any:
    kopie = etree.Element(node.tag)
    kopie.text = (node.text or "").strip()
    return kopie


def elementen(bestanden: Mapping[str, bytes]) -> dict[str, tuple[str, bytes, bytes]]:
    """Id → (kind, meaning, connections) of every followed BPMN element (layout left out)."""
    uit: dict[str, tuple[str, bytes, bytes]] = {}
    for naam, data in sorted(bestanden.items()):
        if not naam.endswith(".bpmn"):
            continue
        root = _xml(data)
        lanes = {(ref.text or "").strip(): lane.get("name") or lane.get("id") or ""
                 for lane in root.iter(f"{{{BPMN}}}lane") for ref in lane.findall(f"{{{BPMN}}}flowNodeRef")}
        for node in root.iter(etree.Element):
            if _gevolgd(node):
                betekenis = _vorm(node, False, lanes.get(node.get("id") or ""))
                uit[node.get("id")] = (etree.QName(node).localname, etree.tostring(betekenis, method="c14n"),
                                       etree.tostring(_vorm(node, True), method="c14n"))
    return uit


@dataclass
class Verschil:
    toegevoegd: list[str] = field(default_factory=list)
    verwijderd: list[str] = field(default_factory=list)
    #: Id → what changed: "inhoud" (name, script, command, ...) and/or "verbindingen" (its flows or lane refs).
    gewijzigd: dict[str, list[str]] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        return {"toegevoegd": self.toegevoegd, "verwijderd": self.verwijderd,
                "gewijzigd": [{"element": k, "wat": v} for k, v in sorted(self.gewijzigd.items())]}


def vergelijk(oud: Mapping[str, tuple[str, bytes, bytes]], nieuw: Mapping[str, tuple[str, bytes, bytes]]) -> Verschil:
    verschil = Verschil(toegevoegd=sorted(set(nieuw) - set(oud)), verwijderd=sorted(set(oud) - set(nieuw)))
    for element in sorted(set(oud) & set(nieuw)):
        wat = [w for w, i in (("inhoud", 1), ("verbindingen", 2)) if oud[element][i] != nieuw[element][i]]
        if oud[element][0] != nieuw[element][0]:
            wat = ["soort", *wat]
        if wat:
            verschil.gewijzigd[element] = wat
    return verschil


def betrokken_zaken(zaken: list[dict[str, Any]], verschillen: Mapping[str, Verschil],
                    versies: Mapping[str, int | None]) -> list[dict[str, Any]]:
    """The running cases that wait in an element the new version removes or changes, judged against the diff of
    their own version (``verschillen`` per definition hash): case, version and per element what happens."""
    uit = []
    for zaak in zaken:
        verschil = verschillen.get(zaak["definition_hash"])
        if verschil is None:
            continue
        geraakt = [{"element": e, "reden": "verwijderd"} for e in zaak.get("active_elements", [])
                   if e in verschil.verwijderd]
        geraakt += [{"element": e, "reden": "gewijzigd: " + ", ".join(verschil.gewijzigd[e])}
                    for e in zaak.get("active_elements", []) if e in verschil.gewijzigd]
        if geraakt:
            uit.append({"zaak": zaak["_id"], "definitieHash": zaak["definition_hash"],
                        "versie": versies.get(zaak["definition_hash"]), "elementen": geraakt})
    return sorted(uit, key=lambda z: (z["versie"] or 0, z["zaak"]))


async def vergelijking(engine: Engine, bestanden: Mapping[str, bytes], basis_hash: str | None) -> dict[str, Any]:
    proces = await asyncio.to_thread(_uitvoerbaar_proces, bestanden)
    basis = await engine.definitions.get(basis_hash) if basis_hash else (
        await engine.definitions.latest(proces) if proces else None)
    if basis is None:
        return {"basis": None, "procesId": proces, **Verschil().view(), "zaken": [], "aantalZaken": 0}
    nieuw = await asyncio.to_thread(elementen, bestanden)
    zaken = await engine.running_cases(basis["process_id"])
    verschillen: dict[str, Verschil] = {}
    versies: dict[str, int | None] = {}
    for content_hash in sorted({z["definition_hash"] for z in zaken} | {basis["_id"]}):
        doc = basis if content_hash == basis["_id"] else await engine.definitions.get(content_hash)
        if doc is None:
            continue
        oud = await asyncio.to_thread(elementen, {f["name"]: f["xml"].encode() for f in doc["files"]})
        verschillen[content_hash] = vergelijk(oud, nieuw)
        versies[content_hash] = doc.get("version")
    betrokken = betrokken_zaken(zaken, verschillen, versies)
    return {"basis": {"hash": basis["_id"], "versie": basis.get("version"), "procesId": basis["process_id"]},
            "procesId": proces, **verschillen[basis["_id"]].view(), "zaken": betrokken[:MAX_ZAKEN],
            "aantalZaken": len(betrokken)}


# --------------------------------------------------------------------------- routes


def _bestanden(body: Ontwerp) -> dict[str, bytes] | None:
    files = {name: xml.encode() for name, xml in body.bestanden.items()}
    return files if all(n.endswith((".bpmn", ".dmn")) for n in files) else None


def studio_routes(app: FastAPI, controle: Uitrolcontrole) -> None:
    """Registered by api.create (before /procesdefinities/{hash}); only a procesbeheerder asks these. ``controle``
    is the deploy's own check (its roles: those a lane can name, with the organisation type of each)."""

    def engine_of(request: Request) -> Engine:
        return request.app.state.pe.engine  # type: ignore[no-any-return]

    @app.get(f"{API_PREFIX}/studio/catalogus", tags=["studio"])
    async def catalogue(principal: PrincipalDep) -> dict[str, Any]:
        """The message catalogue (bpmn/README.md) as data, and the roles a lane can name."""
        require_admin_role(principal, PROCESBEHEERDER, "de studio gebruiken")
        return {**controle.gegevens, "rollen": dict(sorted(controle.rollen.items()))}

    @app.post(f"{API_PREFIX}/studio/controle", tags=["studio"], response_model=ControleAntwoord)
    async def check(body: Ontwerp, request: Request, principal: PrincipalDep):  # type: ignore[no-untyped-def]
        """Every problem that would stop the studio's deploy; nothing is stored."""
        require_admin_role(principal, PROCESBEHEERDER, "procesdefinities controleren")
        files = _bestanden(body)
        if files is None:
            return problem(400, "Ongeldige invoer", "Alleen .bpmn- en .dmn-bestanden.")
        found = await asyncio.to_thread(controle.problemen, files)
        return {"problemen": [p.view() for p in found]}

    @app.post(f"{API_PREFIX}/studio/vergelijking", tags=["studio"], response_model=VergelijkingAntwoord,
              dependencies=[verwerking("list", "zaak")])
    async def compare(body: Vergelijking, request: Request, principal: PrincipalDep):  # type: ignore[no-untyped-def]
        """The change against a deployed version (the latest of the process unless ``basisHash``), and the running
        cases waiting in a removed or changed element."""
        require_admin_role(principal, PROCESBEHEERDER, "procesdefinities vergelijken")
        files = _bestanden(body)
        if files is None:
            return problem(400, "Ongeldige invoer", "Alleen .bpmn- en .dmn-bestanden.")
        try:
            antwoord = await vergelijking(engine_of(request), files, body.basis_hash)
        except etree.XMLSyntaxError:
            return problem(400, "Ongeldige invoer", "Een bestand is geen geldige XML.")
        noteer(ids=[z["zaak"] for z in antwoord["zaken"]])
        return antwoord
