"""The studio (issue 16) for the role procesbeheerder: model a process in the browser (bpmn-js Modeler, properties
panel, bpmnlint), check it on the server, compare it with the deployed version and see the running cases it
concerns, deploy it with a comment, list and download every version.

The browser sends only the BPMN; the other files of the deployed version (the DMN tables) go along unchanged, so
a version holds the same files as ``bpmn/`` and a version exported into git deploys at start-up as the same
content hash (no new version). Every check and the comparison are the engine's (``process_engine/studio.py``):
the console adds the session, CSRF and the audit log.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from console.backends import BackendError
from console.bootstrap import Console, Session
from console.web import Refused, SessionDep, check_csrf, form_of, render
from servicekit.auth import PROCESBEHEERDER
from servicekit.logging import get_logger

log = get_logger(__name__)
#: The largest request the studio takes (a form with the BPMN); the console's other forms stay at 64 KiB.
MAX_BODY = 4 * 1024 * 1024
BODY_LIMIT = (r"/studio/.+", MAX_BODY)


def _mag(session: Session) -> None:
    if not session.mag(PROCESBEHEERDER):
        raise Refused(403, "De studio is voor procesbeheerders (rol procesbeheerder).")


def _fout(status: int, melding: str) -> JSONResponse:
    return JSONResponse({"melding": melding}, status_code=status)


def studio_pages(app: FastAPI, console: Console) -> None:
    backends = console.backends

    async def engine(method: str, path: str, session: Session, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        response = await backends._engine(method, path, session.token,
                                          **({"json": body} if body is not None else {}))
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, {}

    async def versies(session: Session, proces: str) -> list[dict[str, Any]]:
        return sorted((d for d in await backends.definities(session.token) if d["processId"] == proces),
                      key=lambda d: d.get("versie") or 0, reverse=True)

    async def ontwerp(session: Session, proces: str, form: dict[str, str]) -> tuple[dict[str, str], str | None]:
        """The files of the new version: the browser's BPMN under the deployed version's BPMN file name, with that
        version's other files (DMN) unchanged; and the deployed version's hash."""
        bpmn = form.get("bpmn", "")
        if not bpmn.strip():
            raise Refused(400, "Er is geen diagram meegestuurd.")
        lijst = await versies(session, proces)
        if not lijst:
            return {f"{proces}.bpmn": bpmn}, None
        laatste = await backends.definitie(session.token, lijst[0]["hash"])
        bestanden = dict(laatste["bestanden"])
        naam = next((n for n, x in bestanden.items() if n.endswith(".bpmn") and f'id="{proces}"' in x), None)
        bestanden[naam or f"{proces}.bpmn"] = bpmn
        return bestanden, lijst[0]["hash"]

    async def verzoek(request: Request, session: Session) -> dict[str, str]:
        _mag(session)
        form = await form_of(request)
        check_csrf(form, session.csrf)
        return form

    @app.get("/studio", include_in_schema=False)
    async def overzicht(request: Request, session: SessionDep) -> Response:
        _mag(session)
        processen: dict[str, dict[str, Any]] = {}
        for d in await backends.definities(session.token):
            if (d.get("versie") or 0) >= (processen.get(d["processId"], {}).get("versie") or 0):
                processen[d["processId"]] = d
        return render(request, "studio_overzicht.html", sessie=session,
                      processen=sorted(processen.values(), key=lambda d: d["processId"]))

    @app.get("/studio/{proces}", include_in_schema=False)
    async def proces_pagina(request: Request, proces: str, session: SessionDep) -> Response:
        _mag(session)
        lijst, (status, catalogus) = await asyncio.gather(versies(session, proces),
                                                         engine("GET", "/studio/catalogus", session))
        if not lijst:
            raise Refused(404, "Van dit proces is geen versie uitgerold.")
        if status != 200:
            raise BackendError("de procesengine", status)
        bestanden = {d["hash"]: sorted((await backends.definitie(session.token, d["hash"]))["bestanden"])
                     for d in lijst}
        q = urllib.parse.quote(proces, safe="")
        gegevens = {"proces": proces, "catalogus": catalogus, "urls": {
            "bron": f"/definities/{lijst[0]['hash']}/diagram.bpmn?proces={q}",
            "diagram": f"/definities/HASH/diagram.bpmn?proces={q}",
            "controle": f"/studio/{q}/controle", "vergelijking": f"/studio/{q}/vergelijking",
            "uitrollen": f"/studio/{q}/uitrollen"}}
        return render(request, "studio_proces.html", sessie=session, proces=proces, versies=lijst,
                      bestanden=bestanden, gegevens=gegevens)

    @app.get("/studio/{proces}/versies/{content_hash}/{bestand}", include_in_schema=False)
    async def download(proces: str, content_hash: str, bestand: str, session: SessionDep) -> Response:
        _mag(session)
        detail = await backends.definitie(session.token, content_hash)
        if detail["processId"] != proces or bestand not in detail["bestanden"]:
            raise Refused(404, "Deze versie heeft dit bestand niet.")
        await console.audit.record(session.subject, "versie downloaden", "", "gelukt",
                                   {"proces": proces, "versie": detail.get("versie"), "bestand": bestand})
        # The file's own name, so that saving it over bpmn/<name> is the export into git (README, Studio).
        return Response(detail["bestanden"][bestand], media_type="application/xml", headers={
            "Content-Disposition": f'attachment; filename="{urllib.parse.quote(bestand)}"'})

    @app.post("/studio/{proces}/controle", include_in_schema=False)
    async def controle(request: Request, proces: str, session: SessionDep) -> Response:
        form = await verzoek(request, session)
        bestanden, _ = await ontwerp(session, proces, form)
        status, body = await engine("POST", "/studio/controle", session, {"bestanden": bestanden})
        if status != 200:
            return _fout(502, "De procesengine kon het diagram niet controleren.")
        return JSONResponse(body)

    @app.post("/studio/{proces}/vergelijking", include_in_schema=False)
    async def vergelijking(request: Request, proces: str, session: SessionDep) -> Response:
        form = await verzoek(request, session)
        bestanden, basis = await ontwerp(session, proces, form)
        status, body = await engine("POST", "/studio/vergelijking", session,
                                    {"bestanden": bestanden, "basisHash": basis})
        if status != 200:
            return _fout(400 if status == 400 else 502, body.get("detail") or "Vergelijken is mislukt.")
        return JSONResponse(body)

    @app.post("/studio/{proces}/uitrollen", include_in_schema=False)
    async def uitrollen(request: Request, proces: str, session: SessionDep) -> Response:
        """Deploy after the same checks as while drawing (on the server): refused (409, with the problems) when
        the parser, the sandbox, the catalogue or the lanes' roles object."""
        form = await verzoek(request, session)
        toelichting = form.get("toelichting", "").strip()
        if not toelichting:
            return _fout(400, "Geef een toelichting: waarom deze versie?")
        bestanden, basis = await ontwerp(session, proces, form)
        status, body = await engine("POST", "/studio/controle", session, {"bestanden": bestanden})
        if status != 200:
            return _fout(502, "De procesengine kon het diagram niet controleren.")
        if body["problemen"]:
            await console.audit.record(session.subject, "uitrollen", "", "geweigerd: controle",
                                       {"proces": proces, "problemen": len(body["problemen"])})
            return JSONResponse({"problemen": body["problemen"]}, status_code=409)
        status, body = await engine("POST", "/procesdefinities", session,
                                    {"bestanden": bestanden, "toelichting": toelichting[:1000]})
        if status not in (200, 201):
            await console.audit.record(session.subject, "uitrollen", "", f"geweigerd ({status})", {"proces": proces})
            problemen = [{"element": p.get("name"), "regel": p.get("code", ""), "melding": p.get("reason", "")}
                         for p in body.get("invalidParams", [])]
            return JSONResponse({"problemen": problemen, "melding": body.get("detail")},
                                status_code=409 if problemen else 502)
        await console.audit.record(session.subject, "uitrollen", "", "uitgerold" if status == 201 else "al uitgerold",
                                   {"proces": proces, "versie": body.get("versie"), "hash": body.get("hash"),
                                    "vorige": basis, "toelichting": toelichting[:1000]})
        log.info("console.deployed", process=proces, version=body.get("versie"), subject=session.subject)
        return JSONResponse({"versie": body.get("versie"), "hash": body.get("hash"), "nieuw": status == 201},
                            status_code=status)
