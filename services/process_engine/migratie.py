"""Moving running cases to another version of their process: one case, a selection, or every case of a version.

SpiffWorkflow's own story (``SpiffWorkflow.bpmn.util.diff``): the old and new specs are aligned by BPMN id (and,
where an id is gone, by the shape around it); each task of the instance takes the aligned spec, and the branches
that wait or are ready are predicted again on the new spec. A task in an element that has no counterpart in the
new spec cannot move: that is the case waiting in an element the target lacks. ``runtime.migrate`` does the move
and refuses that case.

What this module adds:

* **A dry run** (:func:`beoordeel`): every selected case is restored, moved and run one step *on a copy* that is
  thrown away, so "can move" means the real run would succeed as things stand; a case that cannot move gets the
  reason in words (waiting in an element the target lacks, finished, already on the target, ...).
* **The real run** (:func:`migreer`): each case again judged and moved in its own revision-checked write (the
  engine's one way of changing a case). What it was before (state, version, what the case page shows) is kept
  beside it in ``migratie_terug`` (by ``<migratie>/<zaak>``, so the instance document does not grow); the outcome
  per case and the run itself are a document in ``migraties``.
* **Reversal** (:func:`terugdraaien`) puts a moved case back exactly as it was, but only while it has not moved on:
  its log sequence (every journal or history entry raises it; a claim, a reply, a timer, a message) must be the one
  the migration left. A move that itself ran on (sent a command, delivered a kept message, finished an element)
  is not reversible.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from process_engine import paging, readmodels
from process_engine import runtime as rt
from process_engine.engine import Conflict, Engine, NotFound
from servicekit.audit import noteer, verwerking
from servicekit.auth import PROCESBEHEERDER, PrincipalDep, require_admin_role
from servicekit.http import API_PREFIX, problem
from servicekit.logging import get_logger
from servicekit.store import ConcurrencyError, Document

log = get_logger(__name__)

#: Cases one request may select.
MAX_ZAKEN: Final = 5000
#: From this many selected cases a real run is a background job: the request answers 202 at once with the record
#: (status "bezig"), GET /migraties/{id} shows its progress (verwerkt of totaal, the counts so far).
ACHTERGROND_VANAF: Final = 100
#: A background run writes its progress (counts and the cases done, so a crash leaves a reversible record) at
#: most this many times.
_VOORTGANG_KEREN: Final = 20
#: A run "bezig" whose progress was not written for this long has stopped (the engine was stopped or crashed).
STIL_SECONDEN: Final = 120
#: Background runs under way in this process (a task with no reference left could be collected).
_LOPEND: set[asyncio.Task[None]] = set()
#: What the case page and the work lists read from an instance document besides its state: restored as it was.
#: The journal and history stay: the migration and its reversal are both in the case's journal.
_TOESTAND: Final = ("state", "definition_hash", "active_elements", "waiting_messages", "next_timer_at",
                    "user_tasks", "has_user_tasks", "variables", "kept")
_PROJECTIE: Final = {"status": 1, "process_id": 1, "definition_hash": 1, "state": 1, "active_elements": 1}
_GELIJKTIJDIG: Final = 4


class MigratieGeweigerd(Conflict):
    """This case cannot move (the reason is for the user)."""


@dataclass(frozen=True)
class Oordeel:
    zaak_id: str
    van: str
    kan: bool
    reden: str | None
    elementen: list[str]

    def view(self) -> dict[str, Any]:
        return {"zaakId": self.zaak_id, "vanHash": self.van, "kan": self.kan, "reden": self.reden,
                "elementen": self.elementen}


def _naam(parsed: rt.ParsedDefinition, element_id: str) -> str:
    for spec in [parsed.spec, *parsed.subprocess_specs.values()]:
        task_spec = spec.task_specs.get(element_id)
        if task_spec is not None and getattr(task_spec, "bpmn_name", None):
            return f"'{task_spec.bpmn_name}' ({element_id})"
    return element_id


def _element_ids(parsed: rt.ParsedDefinition) -> set[str]:
    return {getattr(t, "bpmn_id", None) or name for spec in [parsed.spec, *parsed.subprocess_specs.values()]
            for name, t in spec.task_specs.items()}


def _verplaats(wf: Any, bron: rt.ParsedDefinition, doel: rt.ParsedDefinition) -> None:
    """Move ``wf`` onto ``doel`` or raise MigratieGeweigerd with the reason in words."""
    missend = [e for e in rt.active_element_ids(wf) if e not in _element_ids(doel)]
    if missend:
        raise MigratieGeweigerd("wacht in " + ", ".join(_naam(bron, e) for e in missend)
                                + ", dat de doelversie niet heeft")
    try:
        rt.migrate(wf, doel)
    except rt.MigrationError as exc:
        raise MigratieGeweigerd(f"SpiffWorkflow kan de zaak niet verplaatsen: {exc}") from exc


def _vooraf(doc: Document, doel: rt.ParsedDefinition) -> None:
    """What refuses a case before its state is read."""
    if doc.get("status") != "running":
        raise MigratieGeweigerd({"completed": "de zaak is afgerond", "cancelled": "de zaak is geannuleerd"}
                                .get(str(doc.get("status")), f"de zaak is {doc.get('status')}"))
    if doc.get("process_id") != doel.process_id:
        raise MigratieGeweigerd(f"de zaak hoort bij proces {doc.get('process_id')}, niet bij {doel.process_id}")
    if doc.get("definition_hash") == doel.content_hash:
        raise MigratieGeweigerd("de zaak draait al op de doelversie")


def proef(doc: Document, bron: rt.ParsedDefinition, doel: rt.ParsedDefinition) -> Oordeel:
    """Whether one case can move, found by moving a copy of it and running one step (nothing is stored)."""
    actief = list(doc.get("active_elements", []))
    try:
        _vooraf(doc, doel)
        wf = rt.deserialize(bron, bytes(doc["state"]))
        _verplaats(wf, bron, doel)
        rt.step(wf)
    except MigratieGeweigerd as exc:
        return Oordeel(doc["_id"], doc.get("definition_hash", ""), False, str(exc), actief)
    except rt.EngineError as exc:
        return Oordeel(doc["_id"], doc["definition_hash"], False, f"de doelversie loopt vast op deze zaak: {exc}",
                       actief)
    return Oordeel(doc["_id"], doc["definition_hash"], True, None, actief)


class Selectie(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    zaak_ids: list[str] | None = Field(default=None, max_length=MAX_ZAKEN, description="Precies deze zaken.")
    definitie_hash: str | None = Field(default=None, min_length=64, max_length=64,
                                       description="Alle (lopende) zaken van deze versie.")
    element: str | None = Field(default=None, max_length=200, description="Alleen zaken die op dit element staan.")
    incident: bool | None = Field(default=None, description="Met (true) of zonder (false) open incident.")

    def query(self, process_id: str) -> dict[str, Any]:
        query: dict[str, Any] = {"process_id": process_id, "status": "running"}
        if self.zaak_ids is not None:
            query["_id"] = {"$in": self.zaak_ids}
        if self.definitie_hash is not None:
            query["definition_hash"] = self.definitie_hash
        if self.element is not None:
            query["active_elements"] = self.element
        if self.incident is not None:
            open_incident = {"incidents.resolved": False}
            query.update(open_incident if self.incident else {"$nor": [open_incident]})
        return query


class MigratieVerzoek(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    doel_hash: str = Field(min_length=64, max_length=64, description="De versie waarheen de zaken gaan.")
    selectie: Selectie
    proefrun: bool = Field(default=True, description="Alleen beoordelen; er wordt niets verplaatst.")
    toelichting: str | None = Field(default=None, max_length=1000)
    achtergrond: bool | None = Field(default=None, description=(
        f"Als achtergrondtaak (202, voortgang in GET /migraties/{{id}}); leeg: vanaf {ACHTERGROND_VANAF} zaken."))


async def _selectie(engine: Engine, selectie: Selectie, doel: rt.ParsedDefinition) -> list[Document]:
    if selectie.zaak_ids is None and selectie.definitie_hash is None:
        raise Conflict("Kies zaken of een versie: een migratie van alle zaken van alle versies bestaat niet.")
    docs = await engine.instances.store.find(selectie.query(doel.process_id), _PROJECTIE, sort=[("_id", 1)],
                                             limit=MAX_ZAKEN + 1)
    if selectie.zaak_ids is not None:  # a named case that is not running still gets its reason
        gevonden = {d["_id"] for d in docs}
        for zaak_id in selectie.zaak_ids:
            if zaak_id not in gevonden:
                extra = await engine.instances.store.get(zaak_id)  # open or closed
                docs.append(extra or {"_id": zaak_id, "status": "onbekend"})
    if len(docs) > MAX_ZAKEN:
        raise Conflict(f"Meer dan {MAX_ZAKEN} zaken; verklein de selectie (bijvoorbeeld per element).")
    return docs


async def beoordeel(engine: Engine, selectie: Selectie, doel_hash: str) -> list[Oordeel]:
    """The dry run: per selected case whether it can move to ``doel_hash`` and why not."""
    doel = await engine.parsed(doel_hash)
    oordelen = []
    for doc in await _selectie(engine, selectie, doel):
        if doc.get("status") == "onbekend":
            oordelen.append(Oordeel(doc["_id"], "", False, "geen zaak met dit kenmerk", []))
            continue
        bron = await engine.parsed(doc["definition_hash"])
        oordelen.append(await asyncio.to_thread(proef, doc, bron, doel))
    return oordelen


async def verplaats(engine: Engine, zaak_id: str, doel_hash: str, migratie_id: str, by: str) -> dict[str, Any]:
    """Move one case in one revision-checked write; returns its outcome for the migration record."""
    doel = await engine.parsed(doel_hash)
    vooraf: dict[str, Any] = {}

    # The engine's own ways of changing a case (one revision-checked write, its journal, kept messages): a
    # migration is one more kind of change, not a second copy of that machinery.
    def apply(wf: Any, doc: Document) -> list[rt.PendingCommand]:
        _vooraf(doc, doel)
        bron_hash = doc["definition_hash"]
        vooraf.clear()  # an attempt that lost the race starts again from the document read anew
        vooraf.update({"van": bron_hash, "log_seq": doc.get("log_seq", 0),
                       "voor": {k: doc[k] for k in _TOESTAND if k in doc}})
        _verplaats(wf, engine._parsed[bron_hash], doel)
        doc["definition_hash"] = doel_hash
        engine._journal(doc, "gemigreerd", van=bron_hash[:12], naar=doel_hash[:12], migratie=migratie_id, by=by)
        commands = engine._after(wf, doc, rt.step(wf))
        vooraf["verder"] = bool(commands) or doc.get("kept") != vooraf["voor"].get("kept")
        return commands

    huidig = await engine.instances.store.get(zaak_id)
    if huidig is None:
        return {"zaakId": zaak_id, "uitkomst": "geblokkeerd", "reden": "geen zaak met dit kenmerk"}
    try:
        _vooraf(huidig, doel)  # the reason in words; _mutate would only say the case is not running
        stored = await engine._mutate(zaak_id, None, apply, user_action=True)
    except (MigratieGeweigerd, Conflict, NotFound) as exc:
        return {"zaakId": zaak_id, "uitkomst": "geblokkeerd", "reden": str(exc)}
    except (rt.EngineError, ConcurrencyError) as exc:
        return {"zaakId": zaak_id, "uitkomst": "mislukt", "reden": str(exc)[:300]}
    # Only the migration's own journal entry since: then the case is where it was, on the new version.
    terug = not vooraf["verder"] and stored.get("log_seq", 0) == vooraf["log_seq"] + 1
    if terug:
        await _terug_collectie(engine).replace_one({"_id": f"{migratie_id}/{zaak_id}"}, {
            "_id": f"{migratie_id}/{zaak_id}", "voor": vooraf["voor"]}, upsert=True)
    return {"zaakId": zaak_id, "uitkomst": "verplaatst", "reden": None, "van": vooraf["van"],
            "logSeq": stored.get("log_seq", 0), "terugdraaibaar": terug,
            "elementen": stored.get("active_elements", [])}


def _terug_collectie(engine: Engine) -> Any:
    return engine.instances.collection.database["migratie_terug"]


def _stand(uitkomsten: list[dict[str, Any]]) -> dict[str, Any]:
    """A run's counts and cases so far."""
    return {"zaken": list(uitkomsten), "verwerkt": len(uitkomsten),
            **{soort: sum(1 for u in uitkomsten if u["uitkomst"] == soort)
               for soort in ("verplaatst", "geblokkeerd", "mislukt")}}


async def _verplaats_alle(engine: Engine, docs: list[Document], record: Document, by: str,
                          elke: int | None) -> None:
    """Move every selected case (four at a time); with ``elke``, the record's progress is written after every
    ``elke`` cases. The record ends "klaar" with the outcome per case (also after a failure: the cases moved so
    far stay reversible), or "mislukt" when the run itself broke off."""
    migraties = engine.instances.collection.database["migraties"]
    gate = asyncio.Semaphore(_GELIJKTIJDIG)
    uitkomsten: list[dict[str, Any]] = []

    async def een(doc: Document) -> None:
        async with gate:
            uitkomsten.append(await verplaats(engine, doc["_id"], record["doel_hash"], record["_id"], by))
            if elke and len(uitkomsten) % elke == 0 and len(uitkomsten) < len(docs):
                await migraties.update_one({"_id": record["_id"]},
                                           {"$set": {**_stand(uitkomsten), "bijgewerkt": engine.clock()}})

    try:
        await asyncio.gather(*(een(d) for d in docs))
        record.update(_stand(uitkomsten), status="klaar", bijgewerkt=engine.clock())
    except Exception as exc:
        record.update(_stand(uitkomsten), status="mislukt", fout=type(exc).__name__, bijgewerkt=engine.clock())
        log.exception("migration.broke_off", migration=record["_id"], done=len(uitkomsten), total=len(docs))
        if not elke:
            raise
    finally:
        if elke:  # a background run: its record exists; in the request the caller stores it
            await migraties.update_one({"_id": record["_id"]}, {"$set": {k: v for k, v in record.items() if k in (
                "zaken", "verwerkt", "verplaatst", "geblokkeerd", "mislukt", "status", "bijgewerkt", "fout")}})
    log.info("migration.done", migration=record["_id"], target=record["doel_hash"][:12], moved=record["verplaatst"],
             blocked=record["geblokkeerd"], failed=record["mislukt"], by=by, status=record["status"])


async def migreer(engine: Engine, verzoek: MigratieVerzoek, by: str) -> Document:
    """The real run: every selected case that can move is moved; the record (one document in ``migraties``)
    lists the outcome per case. A large selection (``ACHTERGROND_VANAF``, or ``achtergrond``) runs in the
    background: the record is stored at once with status "bezig" and its progress is written as it goes."""
    doel = await engine.parsed(verzoek.doel_hash)
    docs = await _selectie(engine, verzoek.selectie, doel)
    record: Document = {
        "_id": f"mig-{uuid.uuid4().hex[:12]}", "doel_hash": verzoek.doel_hash, "process_id": doel.process_id,
        "selectie": verzoek.selectie.model_dump(by_alias=True, exclude_none=True), "door": by,
        "toelichting": verzoek.toelichting, "op": engine.clock(), "teruggedraaid": [], "status": "bezig",
        "totaal": len(docs), "bijgewerkt": engine.clock(), **_stand([]),
    }
    migraties = engine.instances.collection.database["migraties"]
    if not (verzoek.achtergrond if verzoek.achtergrond is not None else len(docs) >= ACHTERGROND_VANAF):
        await _verplaats_alle(engine, docs, record, by, None)
        await migraties.insert_one(record)
        return record
    await migraties.insert_one(record)
    taak = asyncio.create_task(_verplaats_alle(engine, docs, dict(record), by,
                                               max(1, -(-len(docs) // _VOORTGANG_KEREN))))
    _LOPEND.add(taak)
    taak.add_done_callback(_LOPEND.discard)
    return {**record, "geselecteerd": [d["_id"] for d in docs]}


async def _zet_terug(engine: Engine, zaak: dict[str, Any], migratie: Document, by: str) -> dict[str, Any]:
    zaak_id = zaak["zaakId"]
    for _ in range(10):  # the outbox relay raises the revision too: read again, judge again
        doc = await engine.instances.store.get(zaak_id)
        bewaard = await _terug_collectie(engine).find_one({"_id": f"{migratie['_id']}/{zaak_id}"})
        if doc is None or bewaard is None or not zaak.get("terugdraaibaar"):
            return {"zaakId": zaak_id, "uitkomst": "niet teruggedraaid", "reden": "de migratie liet de zaak al verder "
                    "lopen (een opdracht of bewaard bericht), of de zaak bestaat niet meer"}
        if doc.get("status") != "running" or doc.get("definition_hash") != migratie["doel_hash"] \
                or doc.get("log_seq", 0) != zaak.get("logSeq"):
            return {"zaakId": zaak_id, "uitkomst": "niet teruggedraaid",
                    "reden": "de zaak is na de migratie verder gegaan"}
        terug = {**doc, **bewaard["voor"]}
        engine._journal(terug, "migratie teruggedraaid", migratie=migratie["_id"], by=by)
        # What every engine write does after the state (Engine._snapshot, _mutate): the read models (work lists,
        # timers) follow the restored tasks and timer, and so does whatever else watches the engine's writes.
        readmodels.plan(terug)
        try:
            stored = await engine.instances.store.replace(terug)
        except ConcurrencyError:
            continue
        engine._remember_timer(stored)
        getattr(engine, "on_write", lambda _doc: None)(stored)
        await engine.instances.views.sync(stored)
        return {"zaakId": zaak_id, "uitkomst": "teruggedraaid", "reden": None}
    return {"zaakId": zaak_id, "uitkomst": "niet teruggedraaid", "reden": "de zaak veranderde steeds; probeer opnieuw"}


async def terugdraaien(engine: Engine, migratie_id: str, by: str) -> dict[str, Any]:
    """Put every case the migration moved back on its old version, as far as each has not moved on since."""
    migraties = engine.instances.collection.database["migraties"]
    migratie = await migraties.find_one({"_id": migratie_id})
    if migratie is None:
        raise NotFound("Geen migratie met dit kenmerk.")
    if _status(migratie, engine.clock()) == "bezig":
        raise Conflict("Deze migratie loopt nog; terugdraaien kan als ze klaar is.")
    gate = asyncio.Semaphore(_GELIJKTIJDIG)

    async def een(zaak: dict[str, Any]) -> dict[str, Any]:
        async with gate:
            return await _zet_terug(engine, zaak, migratie, by)

    uitkomsten = await asyncio.gather(*(een(z) for z in migratie["zaken"] if z["uitkomst"] == "verplaatst"))
    ronde = {"op": engine.clock(), "door": by, "zaken": list(uitkomsten),
             "teruggedraaid": sum(1 for u in uitkomsten if u["uitkomst"] == "teruggedraaid")}
    await migraties.update_one({"_id": migratie_id}, {"$set": {"teruggedraaid": [*migratie["teruggedraaid"], ronde]}})
    log.info("migration.reversed", migration=migratie_id, reversed=ronde["teruggedraaid"], by=by)
    return {"migratieId": migratie_id, **ronde}


def _status(doc: Document, nu: datetime) -> str:
    """klaar (also a record from before background runs), bezig, mislukt, or onderbroken: "bezig" without
    progress for ``STIL_SECONDEN`` (the engine stopped during the run; the cases done so far are in the record)."""
    status = str(doc.get("status", "klaar"))
    bijgewerkt = doc.get("bijgewerkt")
    if status == "bezig" and isinstance(bijgewerkt, datetime):
        if bijgewerkt.tzinfo is None and nu.tzinfo is not None:
            bijgewerkt = bijgewerkt.replace(tzinfo=nu.tzinfo)
        if (nu - bijgewerkt).total_seconds() > STIL_SECONDEN:
            return "onderbroken"
    return status


def _record_view(doc: Document, details: bool = True, nu: datetime | None = None) -> dict[str, Any]:
    view = {"id": doc["_id"], "doelHash": doc["doel_hash"], "processId": doc["process_id"],
            "selectie": doc.get("selectie"), "door": doc["door"], "toelichting": doc.get("toelichting"),
            "status": _status(doc, nu) if nu is not None else doc.get("status", "klaar"),
            "totaal": doc.get("totaal", len(doc.get("zaken", []))),
            "verwerkt": doc.get("verwerkt", len(doc.get("zaken", []))),
            "op": doc["op"], "verplaatst": doc["verplaatst"], "geblokkeerd": doc["geblokkeerd"],
            "mislukt": doc["mislukt"], "teruggedraaid": [{k: v for k, v in r.items() if details or k != "zaken"}
                                                         for r in doc.get("teruggedraaid", [])]}
    if details:
        view["zaken"] = [{k: v for k, v in z.items() if k != "logSeq"} for z in doc["zaken"]]
    return view


class ZaakUitkomst(BaseModel):
    """One case in a dry run (``kan``, ``vanHash``), a run (``uitkomst``: verplaatst, geblokkeerd, mislukt) or a
    reversal (teruggedraaid, niet teruggedraaid)."""

    zaakId: str
    reden: str | None = None
    kan: bool | None = None
    vanHash: str | None = None
    uitkomst: str | None = None
    van: str | None = None
    terugdraaibaar: bool | None = None
    elementen: list[str] | None = None


class Terugdraaironde(BaseModel):
    op: Any
    door: str
    teruggedraaid: int
    zaken: list[ZaakUitkomst] | None = None


class Migratieverslag(BaseModel):
    """A migration record; a dry run carries only proefrun, doelHash, zaken, kan and geblokkeerd."""

    proefrun: bool | None = None
    id: str | None = None
    doelHash: str
    processId: str | None = None
    selectie: Any = None
    door: str | None = None
    toelichting: str | None = None
    status: str | None = Field(default=None, description="bezig, klaar, mislukt of onderbroken")
    totaal: int | None = Field(default=None, description="Geselecteerde zaken")
    verwerkt: int | None = Field(default=None, description="Zaken die al verplaatst, geblokkeerd of mislukt zijn")
    op: Any = None
    verplaatst: int | None = None
    geblokkeerd: int | None = None
    mislukt: int | None = None
    kan: int | None = None
    teruggedraaid: list[Terugdraaironde] | None = None
    zaken: list[ZaakUitkomst] | None = None


class Terugdraaiverslag(Terugdraaironde):
    migratieId: str


def migratie_routes(app: FastAPI) -> None:
    """Registered by api.create; only a procesbeheerder migrates (README, Rollen)."""

    def engine_of(request: Request) -> Engine:
        return request.app.state.pe.engine  # type: ignore[no-any-return]

    @app.post(f"{API_PREFIX}/migraties", tags=["migraties"], dependencies=[verwerking("update", "zaak")],
              response_model=Migratieverslag,
              responses={202: {"model": Migratieverslag, "description": "Als achtergrondtaak gestart (status bezig); "
                                                                        "voortgang in GET /migraties/{id}"},
                         404: {"description": "Geen procesversie met deze hash"},
                         409: {"description": "Selectie te groot of zonder zaken of versie"}})
    async def migrate(body: MigratieVerzoek, request: Request,  # type: ignore[no-untyped-def]
                      principal: PrincipalDep):
        """A dry run (``proefrun``, the default) lists per selected case whether it can move to ``doelHash`` and
        why not; a real run moves those that can and reports the outcome per case: in the request, or (from
        ``ACHTERGROND_VANAF`` cases, or with ``achtergrond``) in the background, answered 202 at once."""
        require_admin_role(principal, PROCESBEHEERDER, "zaken naar een andere procesversie migreren")
        engine = engine_of(request)
        try:
            if body.proefrun:
                oordelen = await beoordeel(engine, body.selectie, body.doel_hash)
                noteer(ids=[o.zaak_id for o in oordelen])
                return {"proefrun": True, "doelHash": body.doel_hash, "zaken": [o.view() for o in oordelen],
                        "kan": sum(o.kan for o in oordelen), "geblokkeerd": sum(not o.kan for o in oordelen)}
            record = await migreer(engine, body, principal.subject)
        except NotFound:
            return problem(404, "Niet gevonden", "Geen procesversie met deze hash.")
        if "geselecteerd" in record:  # in the background: the selected cases are the ones it will touch
            noteer(resource_id=record["_id"], ids=record["geselecteerd"])
            return JSONResponse(jsonable_encoder({"proefrun": False, **_record_view(record)}), status_code=202,
                                headers={"Location": f"{API_PREFIX}/migraties/{record['_id']}"})
        noteer(resource_id=record["_id"], ids=[z["zaakId"] for z in record["zaken"]])
        return {"proefrun": False, **_record_view(record)}

    @app.get(f"{API_PREFIX}/migraties", tags=["migraties"], response_model=list[Migratieverslag])
    async def migrations(request: Request, response: Response,  # type: ignore[no-untyped-def]
                         principal: PrincipalDep, page_size: paging.PageSize = 50, cursor: paging.Cursor = None):
        """Every migration, newest first, without its cases, a page at a time (the next in the Link header)."""
        if principal.org_type != "beheer":
            return problem(403, "Geen toegang", "Alleen functioneel beheer ziet migraties.")
        docs = await paging.newest_first(engine_of(request).instances.collection.database["migraties"], "op",
                                         {"zaken": 0}, page_size, cursor, request, response)
        return [_record_view({**d, "zaken": []}, details=False, nu=engine_of(request).clock()) for d in docs]

    @app.get(f"{API_PREFIX}/migraties/{{migratie_id}}", tags=["migraties"], response_model=Migratieverslag,
             responses={404: {"description": "Geen migratie met dit kenmerk"}},
             dependencies=[verwerking("list", "zaak")])
    async def migration(migratie_id: str, request: Request, principal: PrincipalDep):  # type: ignore[no-untyped-def]
        if principal.org_type != "beheer":
            return problem(403, "Geen toegang", "Alleen functioneel beheer ziet migraties.")
        doc = await engine_of(request).instances.collection.database["migraties"].find_one({"_id": migratie_id})
        if doc is None:
            return problem(404, "Niet gevonden", "Geen migratie met dit kenmerk.")
        noteer(ids=[z["zaakId"] for z in doc["zaken"]])
        return _record_view(doc, nu=engine_of(request).clock())

    @app.post(f"{API_PREFIX}/migraties/{{migratie_id}}/terugdraaien", tags=["migraties"],
              response_model=Terugdraaiverslag, responses={404: {"description": "Geen migratie met dit kenmerk"},
                                                           409: {"description": "De migratie loopt nog"}},
              dependencies=[verwerking("update", "zaak")])
    async def reverse(migratie_id: str, request: Request,  # type: ignore[no-untyped-def]
                      principal: PrincipalDep):
        """Every moved case back on its old version, as far as it has not moved on since; outcome per case."""
        require_admin_role(principal, PROCESBEHEERDER, "een migratie terugdraaien")
        try:
            antwoord = await terugdraaien(engine_of(request), migratie_id, principal.subject)
        except NotFound as exc:
            return problem(404, "Niet gevonden", str(exc))
        noteer(resource_id=migratie_id, ids=[z["zaakId"] for z in antwoord["zaken"]])
        return antwoord

