"""The studio's migration pages (issue 16, item 6) for the role procesbeheerder: move one case, a selection (a
version, narrowed to the cases in one element or with an open incident, or a list of case ids) or every case of a
version to another version of its process.

Always a dry run first: the engine moves a copy of each case and says per case whether it can move and why not
(waiting in an element the target lacks, finished, already there). The real run moves those that can and reports
the outcome per case. Every dry run, run and reversal is in the console's audit log (and each moved case's journal
in the engine); a run can be reversed for the cases that have not moved on since.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from console.backends import BackendError
from console.bootstrap import Console, Session
from console.studio_dmn import engine_antwoord, formulier, mag
from console.web import Refused, SessionDep, render
from servicekit.logging import get_logger

log = get_logger(__name__)
#: How long the console waits for the engine to move a large selection (each case is its own write).
MIGRATIE_TIMEOUT = 600.0


def selectie_uit(form: dict[str, str]) -> dict[str, Any]:
    """The engine's selection from the form: case ids (one per line or separated by commas/spaces), else the
    source version, optionally narrowed to an element or to cases with/without an open incident."""
    ids = [i for i in form.get("zaken", "").replace(",", " ").split() if i][:5000]
    selectie: dict[str, Any] = {}
    if ids:
        selectie["zaakIds"] = ids
    if form.get("bron"):
        selectie["definitieHash"] = form["bron"]
    if form.get("element", "").strip():
        selectie["element"] = form["element"].strip()[:200]
    if form.get("incident") in ("ja", "nee"):
        selectie["incident"] = form["incident"] == "ja"
    if "zaakIds" not in selectie and "definitieHash" not in selectie:
        raise Refused(400, "Kies een bronversie of noem de zaken die u wilt migreren.")
    return selectie


def studio_migratie_pages(app: FastAPI, console: Console) -> None:
    """Registered before the studio's /studio/{proces} pages (their path would match /studio/migraties)."""
    backends = console.backends

    async def engine(method: str, path: str, session: Session, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        return await engine_antwoord(backends, method, path, session, body, wacht=MIGRATIE_TIMEOUT)

    async def context(session: Session) -> dict[str, Any]:
        definities = sorted(await backends.definities(session.token),
                            key=lambda d: (d["processId"], d.get("versie") or 0))
        status, migraties = await engine("GET", "/migraties", session)
        if status != 200:
            raise BackendError("de procesengine", status)
        return {"definities": definities, "migraties": migraties,
                "versies": {d["hash"]: f"{d['processId']} v{d.get('versie') or '?'}" for d in definities}}

    async def verzoek(request: Request, session: Session) -> dict[str, str]:
        form = await formulier(request, session)
        if not form.get("doel"):
            raise Refused(400, "Kies de doelversie.")
        return form

    @app.get("/studio/migraties", include_in_schema=False)
    async def page(request: Request, session: SessionDep) -> Response:
        mag(session)
        return render(request, "studio_migratie.html", sessie=session, form=dict(request.query_params),
                      **await context(session))

    @app.post("/studio/migraties/proefrun", include_in_schema=False)
    async def dry_run(request: Request, session: SessionDep) -> Response:
        form = await verzoek(request, session)
        selectie = selectie_uit(form)
        status, body = await engine("POST", "/migraties", session,
                                    {"doelHash": form["doel"], "selectie": selectie, "proefrun": True})
        if status != 200:
            raise Refused(400 if status in (400, 404, 409) else 502,
                          f"Proefrun geweigerd: {body.get('detail') or body.get('title') or status}")
        zaken = sorted(body["zaken"], key=lambda z: (z["kan"], z["zaakId"]))
        await console.audit.record(session.subject, "migratie proefrun", "", f"{body['kan']} kunnen mee, "
                                   f"{body['geblokkeerd']} geblokkeerd", {"doel": form["doel"], "selectie": selectie})
        return render(request, "studio_migratie.html", sessie=session, form=form, proef=body, zaken=zaken,
                      **await context(session))

    @app.post("/studio/migraties/uitvoeren", include_in_schema=False)
    async def run(request: Request, session: SessionDep) -> Response:
        form = await verzoek(request, session)
        if form.get("bevestig") != "ja":
            raise Refused(400, "Bevestig de migratie: vink het vakje aan.")
        selectie = selectie_uit(form)
        status, body = await engine("POST", "/migraties", session, {
            "doelHash": form["doel"], "selectie": selectie, "proefrun": False,
            "toelichting": form.get("toelichting", "").strip()[:1000] or None})
        if status == 202:  # a large selection runs in the engine's background: its page shows the progress
            await console.audit.record(session.subject, "migreren", body["id"], f"gestart: {body['totaal']} zaken",
                                       {"doel": form["doel"], "selectie": selectie, "migratie": body["id"]})
            log.info("console.migration_started", migration=body["id"], total=body["totaal"], subject=session.subject)
            return RedirectResponse(f"/studio/migraties/{urllib.parse.quote(body['id'], safe='')}", status_code=303)
        if status != 200:
            await console.audit.record(session.subject, "migreren", "", f"geweigerd ({status})",
                                       {"doel": form["doel"], "selectie": selectie})
            raise Refused(400 if status in (400, 404, 409) else 502,
                          f"Migratie geweigerd: {body.get('detail') or body.get('title') or status}")
        uitkomst = f"{body['verplaatst']} verplaatst, {body['geblokkeerd']} geblokkeerd, {body['mislukt']} mislukt"
        await console.audit.record(session.subject, "migreren", body["id"], uitkomst, {
            "doel": form["doel"], "selectie": selectie, "migratie": body["id"],
            "verplaatst": [z["zaakId"] for z in body["zaken"] if z["uitkomst"] == "verplaatst"][:1000]})
        log.info("console.migrated", migration=body["id"], moved=body["verplaatst"], subject=session.subject)
        return render(request, "studio_migratie_uitkomst.html", sessie=session, migratie=body, terug=None,
                      zaken=sorted(body["zaken"], key=lambda z: (z["uitkomst"] != "verplaatst", z["zaakId"])),
                      **await context(session))

    @app.get("/studio/migraties/{migratie_id}", include_in_schema=False)
    async def detail(request: Request, migratie_id: str, session: SessionDep) -> Response:
        mag(session)
        status, body = await engine("GET", f"/migraties/{urllib.parse.quote(migratie_id, safe='')}", session)
        if status != 200:
            raise Refused(404, "Geen migratie met dit kenmerk.")
        return render(request, "studio_migratie_uitkomst.html", sessie=session, migratie=body, terug=None,
                      zaken=sorted(body["zaken"], key=lambda z: (z["uitkomst"] != "verplaatst", z["zaakId"])),
                      **await context(session))

    @app.get("/studio/migraties/{migratie_id}/voortgang", include_in_schema=False)
    async def progress(migratie_id: str, session: SessionDep) -> Response:
        """A running migration's status and counts (its page asks every two seconds; no case ids)."""
        mag(session)
        status, body = await engine("GET", f"/migraties/{urllib.parse.quote(migratie_id, safe='')}", session)
        if status != 200:
            return JSONResponse({"melding": "Geen migratie met dit kenmerk."}, status_code=404)
        return JSONResponse({k: body.get(k) for k in ("status", "totaal", "verwerkt", "verplaatst", "geblokkeerd",
                                                      "mislukt")})

    @app.post("/studio/migraties/{migratie_id}/terugdraaien", include_in_schema=False)
    async def reverse(request: Request, migratie_id: str, session: SessionDep) -> Response:
        form = await formulier(request, session)
        if form.get("bevestig") != "ja":
            raise Refused(400, "Bevestig het terugdraaien: vink het vakje aan.")
        pad = f"/migraties/{urllib.parse.quote(migratie_id, safe='')}"
        status, terug = await engine("POST", f"{pad}/terugdraaien", session)
        if status != 200:
            raise Refused(404 if status == 404 else 502, "De migratie kon niet worden teruggedraaid.")
        await console.audit.record(session.subject, "migratie terugdraaien", migratie_id,
                                   f"{terug['teruggedraaid']} van {len(terug['zaken'])} teruggedraaid",
                                   {"migratie": migratie_id, "teruggedraaid": [
                                       z["zaakId"] for z in terug["zaken"] if z["uitkomst"] == "teruggedraaid"][:1000]})
        status, body = await engine("GET", pad, session)
        return render(request, "studio_migratie_uitkomst.html", sessie=session, migratie=body, terug=terug,
                      zaken=body["zaken"], **await context(session))
