"""The studio's DMN editor (issue 16, item 3) for the role procesbeheerder: a decision table of a deployed process
version in dmn-js, with a test bench. Sample inputs are evaluated by the engine (SpiffWorkflow's DMN engine in the
script sandbox, exactly as a business rule task evaluates them); the test cases are kept with the version (and in
git next to the table: ``bpmn/<tabel>.testbank.json``, downloadable here). A deploy sends the other files of the
version unchanged with the edited table and its cases; the engine runs the cases first and refuses the version
when one fails, so a table whose test bench fails cannot be deployed.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from console.backends import BackendError, Backends
from console.bootstrap import Console, Session
from console.web import Refused, SessionDep, check_csrf, form_of, render
from servicekit.auth import PROCESBEHEERDER
from servicekit.logging import get_logger

log = get_logger(__name__)


def mag(session: Session) -> None:
    if not session.mag(PROCESBEHEERDER):
        raise Refused(403, "De studio is voor procesbeheerders (rol procesbeheerder).")


async def formulier(request: Request, session: Session) -> dict[str, str]:
    """A studio form: only a procesbeheerder's, with the session's CSRF token."""
    mag(session)
    form = await form_of(request)
    check_csrf(form, session.csrf)
    return form


async def engine_antwoord(backends: Backends, method: str, path: str, session: Session,
                          body: dict[str, Any] | None = None, wacht: float | None = None) -> tuple[int, Any]:
    """The engine's status and JSON answer (``{}`` when it is not JSON), with the user's own token."""
    extra: dict[str, Any] = {"json": body} if body is not None else {}
    if wacht is not None:  # httpx's own timeout for this request (a large migration takes minutes)
        extra["timeout"] = wacht
    response = await backends._engine(method, path, session.token, **extra)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, {}


def nieuwste(definities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latest version of each process, by process id."""
    per_proces: dict[str, dict[str, Any]] = {}
    for d in definities:
        if (d.get("versie") or 0) >= (per_proces.get(d["processId"], {}).get("versie") or 0):
            per_proces[d["processId"]] = d
    return sorted(per_proces.values(), key=lambda d: d["processId"])


def _json(form: dict[str, str], veld: str, standaard: Any) -> Any:
    try:
        return json.loads(form[veld]) if form.get(veld) else standaard
    except ValueError as exc:
        raise Refused(400, f"Het veld '{veld}' is geen geldige JSON.") from exc


def studio_dmn_pages(app: FastAPI, console: Console) -> None:
    """Registered before the studio's /studio/{proces} pages (their path would match /studio/dmn)."""
    backends = console.backends

    async def engine(method: str, path: str, session: Session, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        return await engine_antwoord(backends, method, path, session, body)

    async def laatste(session: Session, proces: str) -> dict[str, Any]:
        versies = sorted((d for d in await backends.definities(session.token) if d["processId"] == proces),
                         key=lambda d: d.get("versie") or 0, reverse=True)
        if not versies:
            raise Refused(404, "Van dit proces is geen versie uitgerold.")
        return await backends.definitie(session.token, versies[0]["hash"])

    @app.get("/studio/dmn", include_in_schema=False)
    async def tabellen(request: Request, session: SessionDep) -> Response:
        mag(session)
        rijen = []
        for d in nieuwste(await backends.definities(session.token)):
            detail = await backends.definitie(session.token, d["hash"])
            rijen += [{"proces": d["processId"], "versie": d.get("versie"), "bestand": naam}
                      for naam in sorted(detail["bestanden"]) if naam.endswith(".dmn")]
        return render(request, "studio_dmn_overzicht.html", sessie=session, tabellen=rijen)

    @app.get("/studio/dmn/{proces}/{bestand}", include_in_schema=False)
    async def editor(request: Request, proces: str, bestand: str, session: SessionDep) -> Response:
        mag(session)
        versie = await laatste(session, proces)
        if bestand not in versie["bestanden"] or not bestand.endswith(".dmn"):
            raise Refused(404, "Deze versie heeft deze DMN-tabel niet.")
        status, testbank = await engine("GET", f"/dmn/testbank/{versie['hash']}/{urllib.parse.quote(bestand)}",
                                        session)
        if status != 200:
            raise BackendError("de procesengine", status)
        basis = f"/studio/dmn/{urllib.parse.quote(proces, safe='')}/{urllib.parse.quote(bestand, safe='')}"
        gegevens = {"proces": proces, "bestand": bestand, "dmn": versie["bestanden"][bestand],
                    "testgevallen": testbank["testgevallen"], "testbankBestand": testbank["bestand"],
                    "urls": {"evaluatie": f"{basis}/evaluatie", "testbank": f"{basis}/testbank",
                             "uitrollen": f"{basis}/uitrollen"}}
        return render(request, "studio_dmn.html", sessie=session, proces=proces, bestand=bestand, versie=versie,
                      gegevens=gegevens, testbank_bestand=testbank["bestand"], basis=basis)

    @app.get("/studio/dmn/{proces}/{bestand}/testbank.json", include_in_schema=False)
    async def download(proces: str, bestand: str, session: SessionDep, versie: str = "") -> Response:
        """The cases of the table as the file kept next to it in git (``bpmn/<tabel>.testbank.json``)."""
        mag(session)
        gekozen = versie or (await laatste(session, proces))["hash"]
        status, testbank = await engine("GET", f"/dmn/testbank/{urllib.parse.quote(gekozen, safe='')}/"
                                               f"{urllib.parse.quote(bestand, safe='')}", session)
        if status != 200:
            raise Refused(404, "Geen testgevallen voor deze tabel.")
        tekst = json.dumps({"tabel": bestand, "testgevallen": testbank["testgevallen"]}, ensure_ascii=False,
                           indent=2) + "\n"
        return Response(tekst, media_type="application/json", headers={
            "Content-Disposition": f'attachment; filename="{urllib.parse.quote(testbank["bestand"])}"'})

    async def testbank_vraag(request: Request, session: Session, pad: str, bestand: str, melding: str,
                             velden: dict[str, Any]) -> Response:
        """The engine's test bench (evaluate, run the cases) for the table as the browser has it now."""
        form = await formulier(request, session)
        gevraagd = {k: _json(form, k, standaard) if isinstance(standaard, (dict, list)) else form.get(k, standaard)
                    for k, standaard in velden.items()}
        status, body = await engine("POST", pad, session, {"dmn": form.get("dmn", ""), "bestand": bestand,
                                                           **gevraagd})
        if status != 200:
            return JSONResponse({"melding": body.get("detail") or melding,
                                 "problemen": body.get("invalidParams", [])}, status_code=400)
        return JSONResponse(body)

    @app.post("/studio/dmn/{proces}/{bestand}/evaluatie", include_in_schema=False)
    async def evaluatie(request: Request, proces: str, bestand: str, session: SessionDep) -> Response:
        return await testbank_vraag(request, session, "/dmn/evaluatie", bestand, "Evalueren is mislukt.",
                                    {"beslissing": "", "invoer": {}})

    @app.post("/studio/dmn/{proces}/{bestand}/testbank", include_in_schema=False)
    async def testbank(request: Request, proces: str, bestand: str, session: SessionDep) -> Response:
        return await testbank_vraag(request, session, "/dmn/testbank", bestand, "De testbank kon niet draaien.",
                                    {"testgevallen": []})

    @app.post("/studio/dmn/{proces}/{bestand}/uitrollen", include_in_schema=False)
    async def uitrollen(request: Request, proces: str, bestand: str, session: SessionDep) -> Response:
        """A new version: the latest version's files with this table replaced, and its test cases; the engine runs
        them first (409 with the failing cases, nothing deployed)."""
        form = await formulier(request, session)
        toelichting = form.get("toelichting", "").strip()
        if not toelichting:
            return JSONResponse({"melding": "Geef een toelichting: waarom deze versie?"}, status_code=400)
        versie = await laatste(session, proces)
        if bestand not in versie["bestanden"]:
            raise Refused(404, "Deze versie heeft deze DMN-tabel niet.")
        gevallen = _json(form, "testgevallen", [])
        bestanden = {**versie["bestanden"], bestand: form.get("dmn", "")}
        status, body = await engine("POST", "/procesdefinities", session, {
            "bestanden": bestanden, "testgevallen": {bestand: gevallen}, "toelichting": toelichting[:1000]})
        details = {"proces": proces, "tabel": bestand, "vorige": versie["hash"], "testgevallen": len(gevallen)}
        if status not in (200, 201):
            problemen = [{"testgeval": p.get("name"), "melding": p.get("reason", "")}
                         for p in body.get("invalidParams", [])]
            testbank_faalt = body.get("type", "").endswith("dmn-testbank-faalt")
            await console.audit.record(session.subject, "DMN uitrollen", "", "geweigerd: testbank faalt"
                                       if testbank_faalt else f"geweigerd ({status})",
                                       {**details, "problemen": problemen[:20]})
            melding = ("Niet uitgerold: een testgeval van de tabel faalt." if testbank_faalt
                       else f"Niet uitgerold: {body.get('title') or 'de procesengine weigerde de versie'}.")
            return JSONResponse({"melding": melding, "problemen": problemen},
                                status_code=409 if status == 400 else 502)
        await console.audit.record(session.subject, "DMN uitrollen", "", "uitgerold" if status == 201 else
                                   "al uitgerold", {**details, "versie": body.get("versie"), "hash": body.get("hash"),
                                                    "toelichting": toelichting[:1000]})
        log.info("console.dmn_deployed", process=proces, table=bestand, version=body.get("versie"),
                 subject=session.subject)
        return JSONResponse({"versie": body.get("versie"), "hash": body.get("hash"), "nieuw": status == 201},
                            status_code=status)
