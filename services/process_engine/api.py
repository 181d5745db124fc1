"""HTTP edge of the process engine: definitions, cases (instances), user tasks, incidents."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from process_engine import dmn_testbank, paging, readmodels
from process_engine import runtime as rt
from process_engine.bootstrap import EngineSettings, ProcessEngine, bootstrap, definition_files
from process_engine.engine import Conflict, Engine, NotFound
from process_engine.migratie import migratie_routes
from process_engine.packed import INSTANCE_PACKING
from process_engine.readmodels import LANE_ORGANISATIONS
from process_engine.schemas import (
    CasePage,
    CaseView,
    ClockSetting,
    DefinitionDetail,
    DefinitionStatistics,
    DefinitionView,
    Deployment,
    IncidentRetry,
    Migration,
    OpenIncident,
    TaskCompletion,
    TaskDetail,
    TaskView,
)
from process_engine.studio import Uitrolcontrole, geweigerd, studio_routes, van_parser
from process_engine.toegang import belongs_to_caller, case_view, may_see, task_view, variable_problems
from servicekit import zaakindex
from servicekit.audit import Logboek, install_logboek, noteer, verwerking
from servicekit.auth import FUNCTIONEEL_BEHEERDER, PROCESBEHEERDER, Principal, PrincipalDep, forbid, require_admin_role
from servicekit.clock_api import CLOCK_PATH, KlokView, add_clock_route, klok_view
from servicekit.http import API_PREFIX, add_health, create_app, problem
from servicekit.logging import get_logger
from servicekit.runtime import in_background

log = get_logger(__name__)


def get_engine(request: Request) -> Engine:
    return request.app.state.pe.engine  # type: ignore[no-any-return]


EngineDep = Annotated[Engine, Depends(get_engine)]
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "Past niet bij de toestand van de zaak of taak (bijv. geclaimd door een ander)"}}
# Logboek dataverwerkingen (servicekit.audit): a case carries application data; a task is a part of its case.
_ZAAK_LEZEN = verwerking("read", "zaak", "case_id")
_ZAAK_WIJZIGEN = verwerking("update", "zaak", "case_id")
_TAKEN = verwerking("list", "zaak")
_TAAK_LEZEN = verwerking("read", "zaak", onderdeel_param="task_id")
_TAAK_WIJZIGEN = verwerking("update", "zaak", onderdeel_param="task_id")


def _task_order(task: dict[str, Any]) -> tuple[str, str]:
    """Oldest task first; the task id makes the order total, so a cursor never skips or repeats one."""
    since = task.get("sinds")
    return (since.isoformat() if isinstance(since, datetime) else str(since or ""), task["id"])


def _add_error_handlers(app: FastAPI) -> None:
    """Domain errors of the engine as problem+json; nothing was stored when one is raised."""

    @app.exception_handler(NotFound)
    async def not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return problem(404, "Niet gevonden", str(exc))

    @app.exception_handler(Conflict)
    @app.exception_handler(rt.MigrationError)
    async def conflict(_request: Request, exc: Exception) -> JSONResponse:
        return problem(409, "Conflict", str(exc))

    @app.exception_handler(rt.FormValidationError)
    async def invalid_form(_request: Request, exc: rt.FormValidationError) -> JSONResponse:
        return problem(400, "Ongeldig formulier", "Het formulier is niet goed ingevuld; er is niets opgeslagen.",
                       type_="https://ipsflow.nl/problems/ongeldige-invoer",
                       invalid_params=[{"name": p.field, "code": p.code, "reason": p.message}
                                       for p in exc.problems])


def create(settings: EngineSettings | None = None) -> FastAPI:
    pe = bootstrap(settings)
    # the case explorer's filters, answered from memory (zaakindex.py); every write of this engine keeps it current
    index = zaakindex.ZaakIndex()
    pe.zaakindex = index  # type: ignore[attr-defined]
    pe.engine.on_write = index.bij
    pe.engine.case_index = index
    controle = Uitrolcontrole(pe.settings.catalogue_file, LANE_ORGANISATIONS)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with pe.runtime.lifespan(app):
            await pe.engine.instances.ensure_indexes()
            # read models a crash left behind (issue 14): a scan, so beside the start, not before it
            async with in_background(pe.engine.instances.views.repair_in_background(), "read-model-repair"):
                await pe.engine.load_index()
                files = definition_files(pe.settings.bpmn_dir)
                problemen = await asyncio.to_thread(controle.problemen, files) if files else []
                if problemen:  # the same checks as every deploy; the engine runs on what it had
                    log.error("definition.refused", problems=[f"{p.element}: {p.melding}" for p in problemen][:10])
                elif files:
                    try:
                        gebruikt = await dmn_testbank.poort(pe.engine.definitions, files,
                                                            dmn_testbank.uit_map(pe.settings.bpmn_dir, files))
                        startup, _ = await pe.engine.deploy(files, deployed_by="startup")
                        await dmn_testbank.bewaar(pe.engine.definitions, startup["_id"], gebruikt)
                    except rt.DefinitionError as exc:
                        log.error("definition.refused", problems=[p.message for p in exc.problems][:10])
                async with in_background(pe.engine.run_timer_poller(pe.settings.timer_poll_seconds,
                                                                    pe.settings.timer_scan_seconds), "timer-poller"), \
                        in_background(index.bijhouden(pe.engine.instances.summaries,  # closed, then open
                                                     pe.engine.instances.collection, packing=INSTANCE_PACKING),
                                      "zaakindex"):
                    yield

    app = create_app("ipsflow process engine",
                     "Procesdefinities (BPMN/DMN), zaken, werkvoorraad (taken) en incidenten.", lifespan=lifespan,
                     max_body_bytes=2 * 1024 * 1024)
    app.state.pe = pe
    install_logboek(app, Logboek(pe.runtime.db, pe.settings.service_name))
    add_health(app, pe.runtime.ready_checks)
    _add_error_handlers(app)
    studio_routes(app, controle)  # before /procesdefinities/{hash}
    dmn_testbank.dmn_testbank_routes(app)
    migratie_routes(app)
    _routes(app, pe, controle)
    _clock_routes(app, pe)
    return app


def _routes(app: FastAPI, pe: ProcessEngine, controle: Uitrolcontrole) -> None:
    @app.post(f"{API_PREFIX}/procesdefinities", status_code=201, tags=["procesdefinities"],
              response_model=DefinitionView, responses={200: {"model": DefinitionView,
                                                               "description": "Deze definitie was al uitgerold"}})
    async def deploy(body: Deployment, engine: EngineDep, principal: PrincipalDep):  # type: ignore[no-untyped-def]
        require_admin_role(principal, PROCESBEHEERDER, "procesdefinities uitrollen")
        files = {name: xml.encode() for name, xml in body.bestanden.items()}
        bad = [n for n in files if not n.endswith((".bpmn", ".dmn"))]
        if bad:
            return problem(400, "Ongeldige invoer", "Alleen .bpmn- en .dmn-bestanden.",
                           invalid_params=[{"name": f"bestanden.{n}", "code": "extension", "reason": "geen .bpmn/.dmn"}
                                           for n in bad])
        # the studio's checks (parser, sandbox, catalogue, lanes' roles) for every deploy: the CLI's too
        problemen = await asyncio.to_thread(controle.problemen, files)
        if problemen:
            return geweigerd(problemen)
        try:
            gebruikt = await dmn_testbank.poort(engine.definitions, files, body.testgevallen)
            doc, created = await engine.deploy(files, deployed_by=principal.subject, comment=body.toelichting)
            await dmn_testbank.bewaar(engine.definitions, doc["_id"], gebruikt)
        except dmn_testbank.TestbankGefaald as exc:
            return problem(400, "DMN-testbank faalt", "Niet uitgerold: een testgeval van de DMN-tabel faalt; zie "
                           "invalidParams.", type_="https://ipsflow.nl/problems/dmn-testbank-faalt",
                           invalid_params=[{"name": p.element_id or "", "file": p.file or "", "code": "dmn_test",
                                            "reason": p.message} for p in exc.problems])
        except rt.DefinitionError as exc:
            return geweigerd(van_parser(exc))
        return JSONResponse(jsonable_encoder(_definition_view(doc)), status_code=201 if created else 200)

    @app.get(f"{API_PREFIX}/procesdefinities", tags=["procesdefinities"], response_model=list[DefinitionView])
    async def definitions(engine: EngineDep, principal: PrincipalDep,  # type: ignore[no-untyped-def]
                          request: Request, response: Response, page_size: paging.PageSize = paging.PAGE_DEFAULT,
                          cursor: paging.Cursor = None):
        """Every deployed version, by process and version, a page at a time (the next in the Link header)."""
        return paging.page([_definition_view(d) for d in await engine.definitions.all()],
                           lambda d: (d["processId"], d["versie"] or 0, d["hash"]), page_size, cursor, request,
                           response)

    @app.get(f"{API_PREFIX}/procesdefinities/{{content_hash}}", tags=["procesdefinities"],
             response_model=DefinitionDetail)
    async def definition(content_hash: str, engine: EngineDep, principal: PrincipalDep):  # type: ignore[no-untyped-def]
        doc = await engine.definitions.get(content_hash)
        if doc is None:
            return problem(404, "Niet gevonden", "Geen definitie met deze hash.")
        return {**_definition_view(doc), "bestanden": {f["name"]: f["xml"] for f in doc["files"]}}

    @app.get(f"{API_PREFIX}/procesdefinities/{{content_hash}}/statistiek", tags=["procesdefinities"],
             response_model=DefinitionStatistics)
    async def definition_statistics(content_hash: str, engine: EngineDep,  # type: ignore[no-untyped-def]
                                    principal: PrincipalDep):
        """Per element of this version: how many cases are there now, have an open incident there, and have
        completed it (the console's definition view). Functioneel beheer only."""
        if principal.org_type != "beheer":
            raise forbid("Alleen functioneel beheer ziet de tellingen van alle zaken.")
        docs = await engine.instances.find_with_closed(  # closed cases too: what they completed counts
            {"definition_hash": content_hash},
            {"active_elements": 1, "incidents": 1, "history": 1, "log_archived_to": 1})
        counts: dict[str, dict[str, int]] = {}

        def add(element: str | None, kind: str) -> None:
            if element:
                counts.setdefault(element, {"actief": 0, "incident": 0, "afgerond": 0})[kind] += 1

        for d in docs:
            completed = {h.get("elementId") for h in d.get("history", [])}
            if d.get("log_archived_to"):
                completed |= {h.get("elementId") for b in await engine.instances.log_of(d["_id"])
                              for h in b.get("history", [])}
            for element in completed:
                add(element, "afgerond")
            for element in set(d.get("active_elements", [])):
                add(element, "actief")
            for element in {i.get("elementId") for i in d.get("incidents", []) if not i.get("resolved")}:
                add(element, "incident")
        return {"hash": content_hash, "zaken": len(docs), "elementen": counts}

    @app.get(f"{API_PREFIX}/zaakindex", tags=["zaken"])
    async def case_index(principal: PrincipalDep) -> dict[str, Any]:
        """Whether the case list answers from memory yet (zaakindex.py), and how many cases it holds."""
        if principal.org_type != "beheer":
            raise forbid("Alleen functioneel beheer.")
        index: zaakindex.ZaakIndex = pe.zaakindex  # type: ignore[attr-defined]
        return {"gereed": index.gereed, "zaken": len(index.zaken)}

    @app.get(f"{API_PREFIX}/zaken", tags=["zaken"], dependencies=[_TAKEN], response_model=CasePage,
             responses={403: {"description": "Alleen functioneel beheer (de console) ziet alle zaken"}})
    async def cases(engine: EngineDep, principal: PrincipalDep, request: Request,  # type: ignore[no-untyped-def]
                    response: Response,
                    process_id: Annotated[str | None, Query(alias="processId", max_length=200)] = None,
                    definitie_hash: Annotated[str | None, Query(alias="definitieHash", max_length=64)] = None,
                    status: Annotated[str | None, Query(max_length=40)] = None,
                    element: Annotated[str | None, Query(max_length=200, description="Actief element.")] = None,
                    incident: Annotated[bool | None, Query(description="Met (true) of zonder (false) "
                                                                        "open incident.")] = None,
                    gemeente: Annotated[str | None, Query(max_length=20)] = None,
                    ggz: Annotated[str | None, Query(max_length=20, description="KvK-nummer.")] = None,
                    regeling: Annotated[str | None, Query(max_length=100)] = None,
                    ontvangen_van: Annotated[date | None, Query(alias="ontvangenVan")] = None,
                    ontvangen_tot: Annotated[date | None, Query(alias="ontvangenTot")] = None,
                    te_laat: Annotated[bool | None, Query(alias="teLaat")] = None,
                    voorwaarde: Annotated[list[str] | None, Query(max_length=3, description=(
                        "Voorwaarde op een variabele als JSON [naam, operator, waarde]; operator gelijk, bevat of "
                        "bestaat; alle moeten gelden."))] = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0):
        """Every case for functioneel beheer (the console's explorer), newest first, filtered and paged here: on
        the engine's own fields, and on the variables functioneel beheer may see (gemeente, ggz, regulation,
        received between, overdue, conditions). Answered from the in-memory case index (zaakindex.py) once it
        is read; before that from the database. Gemeente, ggz and UWV read their cases one by one."""
        if principal.org_type != "beheer":
            raise forbid("Alleen functioneel beheer ziet de lijst van alle zaken.")
        try:
            condities = zaakindex.voorwaarden(voorwaarde or [])
        except ValueError as exc:
            raise RequestValidationError([{"type": "value_error", "loc": ("query", "voorwaarde"),
                                           "input": voorwaarde, "msg": str(exc)}]) from exc
        criteria = zaakindex.Criteria(
            gemeente or "", ggz or "", regeling or "", ontvangen_van.isoformat() if ontvangen_van else "",
            ontvangen_tot.isoformat() if ontvangen_tot else "", te_laat, condities)
        velden = {"processId": process_id, "definitieHash": definitie_hash, "status": status, "element": element,
                  "incident": incident}
        index: zaakindex.ZaakIndex = pe.zaakindex  # type: ignore[attr-defined]
        response.headers["X-Zaakindex"] = "gereed" if index.gereed else "wordt gelezen"
        if index.gereed:
            total, zaken = index.zoek(velden, criteria, offset, limit)
            _next_offset(request, response, offset, limit, total)
            noteer(ids=[z["id"] for z in zaken])
            return {"totaal": total, "zaken": zaken}
        query: dict[str, Any] = {}
        for field, value in (("process_id", process_id), ("definition_hash", definitie_hash), ("status", status),
                             ("active_elements", element)):
            if value is not None:
                query[field] = value
        if incident is not None:
            # Every incident carries resolved true/false; FerretDB gets $elemMatch/$ne on arrays wrong, this right.
            open_incident = {"incidents.resolved": False}
            query.update(open_incident if incident else {"$nor": [open_incident]})
        # the open cases and the closed cases' summaries (a case caught in its move counts as the open one)
        bronnen = (engine.instances.summaries, engine.instances.collection)
        order = [("started_at", -1), ("_id", 1)]
        projectie = INSTANCE_PACKING.projection(zaakindex.PROJECTIE)
        uitpakken = engine.instances.store.unpacked  # a closed case's summary holds nothing packed: left alone
        if criteria.leeg():
            total = sum([await c.count_documents(query) for c in bronnen])
            gelezen = {d["_id"]: uitpakken(d) for c in bronnen for d in await c.find(query, projectie).sort(order)
                       .limit(offset + limit).to_list(None)}
            alle = sorted(map(zaakindex.samenvatting, gelezen.values()), key=zaakindex.volgorde)
        else:  # the variables are filtered in Python, as the index does
            gelezen = {d["_id"]: uitpakken(d) for c in bronnen for d in await c.find(query, projectie).to_list(None)}
            alle = [z for z in sorted(map(zaakindex.samenvatting, gelezen.values()), key=zaakindex.volgorde)
                    if criteria.past(z["variabelen"])]
            total = len(alle)
        zaken = alle[offset:offset + limit]
        _next_offset(request, response, offset, limit, total)
        noteer(ids=[z["id"] for z in zaken])
        return {"totaal": total, "zaken": zaken}

    @app.get(f"{API_PREFIX}/zaken/{{case_id}}", tags=["zaken"], dependencies=[_ZAAK_LEZEN], response_model=CaseView)
    async def case(case_id: str, engine: EngineDep, principal: PrincipalDep):  # type: ignore[no-untyped-def]
        doc = await engine.instances.store.get(case_id)
        if doc is None:
            return problem(404, "Niet gevonden", "Geen zaak met dit kenmerk.")
        if not belongs_to_caller(principal, doc.get("variables", {})):
            raise forbid("Deze zaak hoort bij een andere organisatie.")
        return case_view(await engine.with_log(doc), principal)

    @app.post(f"{API_PREFIX}/zaken/{{case_id}}/incidenten/{{command_id}}/opnieuw", tags=["zaken"],
              dependencies=[_ZAAK_WIJZIGEN], response_model=CaseView, responses=_CONFLICT)
    async def retry(case_id: str, command_id: str, engine: EngineDep,  # type: ignore[no-untyped-def]
                    principal: PrincipalDep, body: IncidentRetry | None = None):
        """Re-issue the command behind an open incident; optionally with corrected case variables first (only
        those in ``zaakvariabelen.BEWERKBAAR``, no personal data; refused as a whole otherwise)."""
        require_admin_role(principal, FUNCTIONEEL_BEHEERDER, "een incident opnieuw proberen")
        variables = body.variabelen if body else {}
        if variables:
            doc = await engine.instances.store.get(case_id)
            if doc is None:
                return problem(404, "Niet gevonden", "Geen zaak met dit kenmerk.")
            refused = variable_problems(doc["process_id"], variables)
            if refused:
                return problem(400, "Ongeldige variabelen", "Er is niets gewijzigd en niets opnieuw geprobeerd.",
                               type_="https://ipsflow.nl/problems/ongeldige-invoer", invalid_params=refused)
        done = await engine.retry_incident(case_id, command_id, principal.subject, variables or None)
        return case_view(await engine.with_log(done), principal)

    @app.get(f"{API_PREFIX}/incidenten", tags=["zaken"], dependencies=[_TAKEN], response_model=list[OpenIncident],
             responses={403: {"description": "Alleen functioneel beheer (de console)"}})
    async def open_incidents(engine: EngineDep, principal: PrincipalDep,  # type: ignore[no-untyped-def]
                             request: Request, response: Response,
                             element: Annotated[str | None, Query(max_length=200)] = None,
                             page_size: paging.PageSize = paging.PAGE_DEFAULT, cursor: paging.Cursor = None):
        """Every open incident of every running case (the console groups them by element, error and message),
        by case and command, a page at a time (the next in the Link header). Reads the open cases only."""
        if principal.org_type != "beheer":
            raise forbid("Alleen functioneel beheer ziet alle incidenten.")
        query: dict[str, Any] = {"incidents.resolved": False, "status": "running"}
        if element is not None:
            query["incidents.elementId"] = element
        docs = await engine.instances.collection.find(query, {"process_id": 1, "definition_hash": 1,
                                                              "incidents": 1}).to_list(None)
        out = [{"zaakId": d["_id"], "processId": d["process_id"], "definitieHash": d["definition_hash"],
                **{k: i.get(k) for k in ("commandId", "commandType", "elementId", "attempt", "errorCode", "message",
                                         "at")}}
               for d in docs for i in d.get("incidents", [])
               if not i.get("resolved") and (element is None or i.get("elementId") == element)]
        out = paging.page(out, lambda o: (o["zaakId"], o["commandId"]), page_size, cursor, request, response)
        noteer(ids=sorted({o["zaakId"] for o in out}))
        return out

    @app.post(f"{API_PREFIX}/zaken/{{case_id}}/annuleren", tags=["zaken"], dependencies=[_ZAAK_WIJZIGEN],
              response_model=CaseView, responses=_CONFLICT)
    async def cancel(case_id: str, engine: EngineDep, principal: PrincipalDep):  # type: ignore[no-untyped-def]
        require_admin_role(principal, FUNCTIONEEL_BEHEERDER, "een zaak annuleren")
        return case_view(await engine.with_log(await engine.cancel(case_id, principal.subject)), principal)

    @app.post(f"{API_PREFIX}/zaken/{{case_id}}/migreren", tags=["zaken"], dependencies=[_ZAAK_WIJZIGEN],
              response_model=CaseView, responses=_CONFLICT)
    async def migrate(case_id: str, body: Migration, engine: EngineDep,  # type: ignore[no-untyped-def]
                      principal: PrincipalDep):
        require_admin_role(principal, PROCESBEHEERDER, "een zaak naar een andere procesversie migreren")
        return case_view(await engine.with_log(await engine.migrate(case_id, body.definitie_hash, principal.subject)),
                          principal)

    @app.get(f"{API_PREFIX}/taken", tags=["taken"], dependencies=[_TAKEN], response_model=list[TaskView])
    async def tasks(engine: EngineDep, principal: PrincipalDep, request: Request,  # type: ignore[no-untyped-def]
                    response: Response,
                    lane: Annotated[str | None, Query(max_length=100)] = None,
                    zaak: Annotated[str | None, Query(max_length=200, description="Alleen de taken van deze zaak.")]
                    = None,
                    page_size: paging.PageSize = paging.PAGE_DEFAULT, cursor: paging.Cursor = None):
        """The caller's work list, oldest task first, a page at a time (``pageSize``; the next page is in the
        ``Link`` header, rel="next"). Read from the work list of the caller's organisation per lane (and, for
        beheer, from the open tasks): never a search through the cases (issue 14)."""
        views = engine.instances.views
        if zaak is not None:
            doc = await engine.instances.store.get(zaak)
            found = [task_view(doc, t) for t in doc.get("user_tasks", [])
                     if may_see(principal, t, doc.get("variables", {}))] if doc and doc["status"] == "running" else []
        elif principal.org_type == "beheer":
            found = await views.open_tasks(None, 10_000)
        else:
            lanes = [lane.lower()] if lane is not None else [*sorted(principal.roles), ""]
            org = readmodels.UWV if principal.org_type == "uwv" else principal.org  # UWV sees what UWV decides
            found = await views.worklist(readmodels.worklist_id(principal.org_type, org, name)
                                         for name in lanes if not name or principal.has_role(name))
        found = [t for t in found if lane is None or t["lane"] == lane]
        page = paging.page(found, _task_order, page_size, cursor, request, response)
        noteer(ids=[t["zaakId"] for t in page])
        return page

    async def _find_task(engine: Engine, task_id: str, principal: Principal,
                         act: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
        """The open task and its case; NotFound (404) or 403 when the caller may not see it or, with ``act``
        (claim, release, complete), may not work on it: beheer reads every task but works on none, whatever
        roles or mandates its token claims (a task is the organisation's own work)."""
        # by _id: the task's document names its case, and the case (the truth) must still hold the task
        found = await engine.instances.views.task(task_id)
        doc = await engine.instances.store.get(found["case_id"]) if found else None
        task = next((t for t in (doc or {}).get("user_tasks", []) if t["taskId"] == task_id), None)
        if doc is None or task is None or doc["status"] != "running":
            raise NotFound("Geen open taak met dit kenmerk.")
        noteer(resource_id=doc["_id"])
        if not may_see(principal, task, doc.get("variables", {})):
            raise forbid("Deze taak is niet voor uw rol of organisatie.")
        if act and principal.org_type == "beheer":
            raise forbid("Functioneel beheer ziet taken, maar claimt of rondt ze niet af.")
        return doc, task

    @app.get(f"{API_PREFIX}/taken/{{task_id}}", tags=["taken"], dependencies=[_TAAK_LEZEN],
             response_model=TaskDetail)
    async def task(task_id: str, engine: EngineDep, principal: PrincipalDep):  # type: ignore[no-untyped-def]
        found = await _find_task(engine, task_id, principal, act=False)
        return task_view(*found, with_form=True)

    @app.post(f"{API_PREFIX}/taken/{{task_id}}/afronden", tags=["taken"], dependencies=[_TAAK_WIJZIGEN],
              response_model=CaseView, responses=_CONFLICT)
    async def complete(task_id: str, body: TaskCompletion, engine: EngineDep,  # type: ignore[no-untyped-def]
                       principal: PrincipalDep):
        doc, task = await _find_task(engine, task_id, principal)
        kind = rt.required_mandate(task.get("mandate"), body.gegevens)
        if kind is not None and not principal.may_decide(kind):
            raise forbid(f"Uw ondermandaat omvat geen besluiten van de soort '{kind}'.")
        signer = {"subject": principal.subject, "naam": principal.name or principal.subject,
                  "mandaten": sorted(principal.mandates)}
        done = await engine.complete_user_task(doc["_id"], task_id, body.gegevens, principal.subject, signer)
        return case_view(await engine.with_log(done), principal)

    for action, claim in (("claimen", True), ("vrijgeven", False)):
        def make(claim: bool = claim):  # type: ignore[no-untyped-def]
            async def endpoint(task_id: str, engine: EngineDep,  # type: ignore[no-untyped-def]
                               principal: PrincipalDep):
                found = await _find_task(engine, task_id, principal)
                doc = await engine.claim(found[0]["_id"], task_id, principal.subject if claim else None,
                                         releaser=principal.subject)
                return next(task_view(doc, t) for t in doc["user_tasks"] if t["taskId"] == task_id)
            return endpoint
        app.post(f"{API_PREFIX}/taken/{{task_id}}/{action}", tags=["taken"], dependencies=[_TAAK_WIJZIGEN],
                 response_model=TaskView, responses=_CONFLICT)(make())


def _clock_routes(app: FastAPI, pe: ProcessEngine) -> None:
    add_clock_route(app, pe.clock)

    async def move(moment: datetime | None, principal: Principal) -> KlokView | JSONResponse:
        keeper = pe.runtime.clock_keeper
        if keeper is None:
            return problem(409, "Klok niet verstelbaar", "Deze omgeving draait op de echte tijd.")
        state = await keeper.set(moment)
        log.warning("clock.moved", offset_seconds=state.offset.total_seconds(), by=principal.subject)
        return klok_view(pe.clock)

    @app.put(CLOCK_PATH, tags=["beheer"], response_model=KlokView, response_model_by_alias=True,
             responses={409: {"description": "Deze omgeving draait op de echte tijd"}})
    async def set_clock(body: ClockSetting, principal: PrincipalDep):  # type: ignore[no-untyped-def]
        """Test and training environments only (IPSFLOW_ADJUSTABLE_CLOCK=true): every service follows (the
        broadcast ``ips.klok.zetten.v1``); timers due by the new time fire."""
        require_admin_role(principal, FUNCTIONEEL_BEHEERDER, "de klok verzetten")
        if body.nu.tzinfo is None:
            return problem(400, "Ongeldige invoer", "Geef de tijd met tijdzone.",
                           invalid_params=[{"name": "nu", "code": "timezone", "reason": "tijdzone ontbreekt"}])
        return await move(body.nu, principal)

    @app.delete(CLOCK_PATH, tags=["beheer"], response_model=KlokView, response_model_by_alias=True,
                responses={409: {"description": "Deze omgeving draait op de echte tijd"}})
    async def reset_clock(principal: PrincipalDep):  # type: ignore[no-untyped-def]
        """Every service back on real time (test and training environments)."""
        require_admin_role(principal, FUNCTIONEEL_BEHEERDER, "de klok verzetten")
        return await move(None, principal)


def _next_offset(request: Request, response: Response, offset: int, limit: int, total: int) -> None:
    """The next page of a list paged by ``offset`` and ``limit`` in the Link header (rel="next"), if any."""
    if offset + limit < total:
        next_url = request.url.include_query_params(offset=offset + limit, limit=limit)
        response.headers["Link"] = f'<{next_url}>; rel="next"'


def _definition_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {"hash": doc["_id"], "processId": doc["process_id"], "versie": doc.get("version"),
            "uitgerold": doc["deployed_at"], "uitgerolddoor": doc["deployed_by"], "toelichting": doc.get("comment"),
            "startberichten": doc.get("start_messages", []), "berichten": doc.get("messages", [])}
