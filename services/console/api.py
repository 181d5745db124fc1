"""The console's pages: sign-in, overview, case explorer (with CSV), case page with its diagram, actions, audit.

Server-rendered (Jinja2, Dutch); no API of its own besides /health and /ready. Every page needs a session; the
session holds the user's token server-side and the browser only a random id (cookie HttpOnly, Secure,
SameSite=Lax). Every form carries the session's CSRF token; a POST without it is refused (403).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from console import definities, incidenten, wachtrijen, zaakdetail
from console.backends import BackendError, dead_letters_of
from console.bootstrap import Console, Session, bootstrap
from console.explorer import OPERATOREN, Filters, csv_regels, zoek
from console.oidc import OidcError
from console.settings import ROLLEN, ConsoleSettings
from console.studio import BODY_LIMIT as STUDIO_BODY_LIMIT
from console.studio import studio_pages
from console.studio_dmn import studio_dmn_pages
from console.studio_migratie import studio_migratie_pages
from console.web import COOKIE, STATUSSEN, NotSignedIn, Refused, SessionDep, check_csrf, form_of, render
from servicekit import otel
from servicekit.auth import FUNCTIONEEL_BEHEERDER, Principal, mint_token
from servicekit.http import add_health, create_app
from servicekit.logging import get_logger

log = get_logger(__name__)
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
#: The diagram viewer, bundled by tools/console/install.sh (make deps) from tools/console/package-lock.json.
BUNDLE_DIR = ROOT / "tools" / "console" / "dist"
SIGNIN_CSRF_COOKIE = "ipsflow_console_aanmelden"
OIDC_COOKIE = "ipsflow_console_oidc"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
#: Development sign-in identities: the three console roles of functioneel beheer, and a gemeente official and a
#: ggz user (who are refused: the console is for beheer only).
DEV_IDENTITEITEN: dict[str, tuple[str, str, list[str]]] = {
    "viewer": ("beheer", "ipsflow", ["viewer"]),
    "functioneel-beheerder": ("beheer", "ipsflow", ["functioneel-beheerder"]),
    "procesbeheerder": ("beheer", "ipsflow", ["procesbeheerder"]),
    "gemeente": ("gemeente", "0957", ["behandelaar"]),
    "ggz": ("ggz", "41178211", ["aanvrager"]),
}


def admitted(principal: Principal) -> list[str]:
    """The console roles of a verified principal; Refused (403) for anyone but functioneel beheer."""
    if principal.org_type != "beheer":
        raise Refused(403, "De beheerconsole is alleen voor functioneel beheer; gemeenten en ggz-instellingen "
                           "werken in hun eigen portaal.")
    rollen = [r for r in ROLLEN if principal.has_role(r)]
    if not rollen:
        raise Refused(403, "Uw account heeft geen rol voor de beheerconsole (viewer, functioneel-beheerder of "
                           "procesbeheerder).")
    return rollen


def cookie_secure(request: Request, settings: ConsoleSettings) -> bool:
    # Plain http only on loopback in development (make run); everywhere else the cookie needs https.
    return not (settings.environment == "development" and request.url.scheme == "http"
                and (request.url.hostname or "") in LOOPBACK)


def create(settings: ConsoleSettings | None = None) -> FastAPI:
    console = bootstrap(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        otel.configure(console.settings.service_name, console.settings.otel_exporter)
        await console.sessions.ensure_indexes()
        try:
            yield
        finally:
            await console.stop_achtergrond()  # a replay still running says where it stopped, before the client goes
            await console.backends.close()
            await console.client.close()
            otel.shutdown()

    app = create_app("ipsflow beheerconsole", "Beheerconsole: zaken, incidenten, wachtrijen (HTML; geen eigen API).",
                     lifespan=lifespan, body_limits=[STUDIO_BODY_LIMIT])
    app.state.console = console
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    BUNDLE_DIR.mkdir(parents=True, exist_ok=True)
    app.mount("/bundle", StaticFiles(directory=BUNDLE_DIR), name="bundle")

    async def ready_checks() -> dict[str, bool]:
        try:
            await asyncio.wait_for(console.client.admin.command("ping"), timeout=3)
            return {"mongodb": True}
        except Exception:
            return {"mongodb": False}

    add_health(app, ready_checks)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        # Same origin only: no CDN, no inline script (bpmn-js sets style attributes, hence style-src inline).
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if request.url.path not in ("/health", "/ready") and not request.url.path.startswith(("/static", "/bundle")):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(NotSignedIn)
    async def to_signin(request: Request, _exc: NotSignedIn) -> Response:
        return RedirectResponse("/aanmelden", status_code=303)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return render(request, "fout.html", exc.status, titel="Geen toegang" if exc.status == 403 else "Fout",
                      reden=exc.reden, verder=exc.verder, sessie=None)

    @app.exception_handler(BackendError)
    async def backend_down(request: Request, exc: BackendError) -> Response:
        return render(request, "fout.html", 502, titel="Dienst niet bereikbaar", reden=str(exc), sessie=None)

    _signin_routes(app, console)
    _pages(app, console)
    studio_dmn_pages(app, console)  # before studio_pages: /studio/{proces} would match /studio/dmn
    studio_migratie_pages(app, console)
    studio_pages(app, console)
    incidenten.routes(app, console)
    wachtrijen.routes(app, console)
    definities.routes(app, console)
    return app


def _signin_routes(app: FastAPI, console: Console) -> None:
    development = console.settings.environment == "development"

    @app.get("/aanmelden", include_in_schema=False)
    async def signin_page(request: Request) -> Response:
        csrf = secrets.token_urlsafe(32)
        response = render(request, "aanmelden.html", ontwikkeling=development, rollen=list(DEV_IDENTITEITEN),
                          csrf=csrf, sessie=None, oidc=console.oidc.configured)
        response.set_cookie(SIGNIN_CSRF_COOKIE, csrf, httponly=True, samesite="lax", path="/aanmelden",
                            secure=cookie_secure(request, console.settings), max_age=1800)
        return response

    @app.post("/aanmelden", include_in_schema=False)
    async def signin(request: Request) -> Response:
        if not development:
            # OpenID Connect (production) is not built yet: there is no other way in.
            raise Refused(404, "Aanmelden voor ontwikkeling bestaat alleen met IPSFLOW_ENVIRONMENT=development.")
        form = await form_of(request)
        check_csrf(form, request.cookies.get(SIGNIN_CSRF_COOKIE, ""))
        if form.get("rol") not in DEV_IDENTITEITEN:
            raise Refused(400, "Kies een rol.")
        org_type, org, roles = DEV_IDENTITEITEN[form["rol"]]
        token = mint_token(f"dev-{form['rol']}", org_type, org, roles, name=f"Ontwikkelaar ({form['rol']})")
        response = await _open_session(request, token, "ontwikkeling")
        response.delete_cookie(SIGNIN_CSRF_COOKIE, path="/aanmelden")
        return response

    async def _open_session(request: Request, token: str, how: str) -> Response:
        try:
            principal = console.verifier.verify(token)  # the services' own check, for both ways in
        except HTTPException as exc:
            raise Refused(403, "Het token is niet geldig voor ipsflow.") from exc
        admitted(principal)
        expires = datetime.fromtimestamp(jwt.decode(token, options={"verify_signature": False})["exp"], UTC)
        session_id, _ = await console.sessions.create(principal, token, console.settings.console_session_minutes,
                                                      expires)
        await console.audit.record(principal.subject, "aanmelden", "", "gelukt",
                                   {"rollen": sorted(principal.roles), "via": how})
        log.info("console.signed_in", subject=principal.subject, roles=sorted(principal.roles), via=how)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, session_id, httponly=True, samesite="lax", path="/",
                            secure=cookie_secure(request, console.settings),
                            max_age=console.settings.console_session_minutes * 60)
        return response

    @app.get("/oidc/start", include_in_schema=False)
    async def oidc_start(request: Request) -> Response:
        if not console.oidc.configured:
            raise Refused(404, "Aanmelden via OpenID Connect is niet ingesteld.")
        try:
            url, state = await console.oidc.start()
        except OidcError as exc:
            raise Refused(502, str(exc)) from exc
        response = RedirectResponse(url, status_code=303)
        # Lax: the provider's redirect back is a top-level GET, so the browser sends it along.
        response.set_cookie(OIDC_COOKIE, state, httponly=True, samesite="lax", path="/oidc",
                            secure=cookie_secure(request, console.settings), max_age=600)
        return response

    @app.get("/oidc/terug", include_in_schema=False)
    async def oidc_back(request: Request, code: str = "", state: str = "") -> Response:
        if not console.oidc.configured:
            raise Refused(404, "Aanmelden via OpenID Connect is niet ingesteld.")
        try:
            token = await console.oidc.finish(code[:2000], state[:200], request.cookies.get(OIDC_COOKIE, ""))
        except OidcError as exc:
            raise Refused(403, str(exc)) from exc
        response = await _open_session(request, token, "openid-connect")
        response.delete_cookie(OIDC_COOKIE, path="/oidc")
        return response

    @app.post("/afmelden", include_in_schema=False)
    async def signout(request: Request, session: SessionDep) -> Response:
        check_csrf(await form_of(request), session.csrf)
        await console.sessions.end(session.id)
        response = RedirectResponse("/aanmelden", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response


def _versies(definities: list[dict[str, Any]]) -> dict[str, str]:
    return {d["hash"]: f"{d['processId']} v{d.get('versie') or '?'}" for d in definities}


async def _overzicht(console: Console, session: Session) -> dict[str, Any]:
    zaken, definities = await asyncio.gather(console.backends.zaken(session.token),
                                             console.backends.definities(session.token))
    versies = _versies(definities)
    try:
        wachtrijen: list[dict[str, Any]] | None = await console.backends.wachtrijen()
        wachtrij_fout = ""
    except BackendError as exc:
        wachtrijen, wachtrij_fout = None, str(exc)
    return {
        "totaal": len(zaken),
        "per_status": sorted(Counter(z["status"] for z in zaken).items()),
        "per_versie": sorted(Counter((z["definitieHash"], versies.get(z["definitieHash"], z["definitieHash"][:12]))
                                     for z in zaken).items(), key=lambda kv: kv[0][1]),
        "incidenten": [z for z in zaken if z.get("openIncidenten")][:50],
        "aantal_incidenten": sum(1 for z in zaken if z.get("openIncidenten")),
        "te_laat": [z for z in zaken if z["status"] == "running" and (z.get("variabelen") or {}).get("te_laat")
                    is True][:50],
        "wachtrijen": wachtrijen, "wachtrij_fout": wachtrij_fout,
        "geparkeerd": sum(w["geparkeerd"] for w in wachtrijen or []),
        "bijgewerkt": datetime.now(UTC),
        "verversen": console.settings.console_refresh_seconds,
    }


#: How long the console waits for the outcome of a retry before it reports "no answer yet".
RETRY_WACHT_SECONDEN = 10.0


def _pages(app: FastAPI, console: Console) -> None:
    async def _afloop(session: Session, case_id: str, element: str | None,
                      na: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The real outcome of a retry: the engine answers at once, the service later. Poll the case until its
        element is done (resolved), a new incident appears on it (failed again, with that error), or time is up."""
        deadline = asyncio.get_running_loop().time() + RETRY_WACHT_SECONDEN
        while True:
            nieuw = [i for i in na.get("incidenten", []) if not i.get("resolved") and i.get("elementId") == element]
            if nieuw:
                return f"opnieuw mislukt: {nieuw[-1].get('message') or nieuw[-1].get('errorCode') or 'onbekend'}", na
            if element not in na.get("actieveElementen", []):
                return "opgelost: de zaak is verder", na
            if asyncio.get_running_loop().time() >= deadline:
                return f"opnieuw verstuurd; nog geen antwoord na {RETRY_WACHT_SECONDEN:.0f} s", na
            await asyncio.sleep(0.5)
            na = await console.backends.zaak(session.token, case_id) or na

    @app.get("/", include_in_schema=False)
    async def overview(request: Request, session: SessionDep) -> Response:
        return render(request, "overzicht.html", sessie=session, **await _overzicht(console, session))

    @app.get("/overzicht/deel", include_in_schema=False)
    async def overview_part(request: Request, session: SessionDep) -> Response:
        return render(request, "_overzicht.html", sessie=session, **await _overzicht(console, session))

    @app.get("/zaken", include_in_schema=False)
    async def explorer(request: Request, session: SessionDep) -> Response:
        filters = Filters.uit_query(request.query_params, {k: request.query_params.getlist(k)
                                                           for k in ("vnaam", "vop", "vwaarde")})
        try:
            pagina = max(1, min(int(request.query_params.get("pagina", "1")), 1_000_000))
        except ValueError:
            pagina = 1
        grootte = console.settings.console_page_size
        # the engine filters and pages (servicekit.zaakindex): one page travels, not every case
        (totaal, zaken), definities = await asyncio.gather(
            console.backends.zaken_pagina(session.token, (pagina - 1) * grootte, grootte, **filters.engine_filters()),
            console.backends.definities(session.token))
        paginas = max(1, -(-totaal // grootte))
        if pagina > paginas:  # past the end (a bookmark of a list that shrank): the last page
            pagina = paginas
            totaal, zaken = await console.backends.zaken_pagina(session.token, (pagina - 1) * grootte, grootte,
                                                                **filters.engine_filters())
        rijen = [dict(z, gemeente=zoek(z.get("variabelen") or {}, "gemeenteCode", None),
                      ontvangen=zoek(z.get("variabelen") or {}, "ontvangenOp", None)) for z in zaken]
        voorwaarden = filters.voorwaarden + [None] * (3 - len(filters.voorwaarden))
        return render(request, "zaken.html", sessie=session, f=filters, zaken=rijen, totaal=totaal,
                      pagina=pagina, paginas=paginas, versies=_versies(definities), voorwaarden=voorwaarden,
                      operatoren=OPERATOREN, statussen=STATUSSEN)

    @app.get("/zaken.csv", include_in_schema=False)
    async def export(request: Request, session: SessionDep) -> Response:
        filters = Filters.uit_query(request.query_params, {k: request.query_params.getlist(k)
                                                           for k in ("vnaam", "vop", "vwaarde")})
        zaken, definities = await asyncio.gather(console.backends.zaken(session.token, **filters.engine_filters()),
                                                 console.backends.definities(session.token))
        versies = _versies(definities)
        await console.audit.record(session.subject, "csv-export", "", "gelukt", {"aantal": len(zaken),
                                                                                 "filters": filters.query()})
        return Response(csv_regels(zaken, versies), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="zaken.csv"'})

    @app.get("/zaken/{case_id}", include_in_schema=False)
    async def case_page(request: Request, case_id: str, session: SessionDep) -> Response:
        zaak = await console.backends.zaak(session.token, case_id)
        if zaak is None:
            raise Refused(404, "Geen zaak met dit kenmerk.")
        versies = _versies(await console.backends.definities(session.token))
        incidenten = [i for i in zaak["incidenten"] if not i.get("resolved")]
        try:
            parked = [w["dlq"] for w in await console.backends.wachtrijen() if w["geparkeerd"] and w["dlq"]]
            dode_brieven = await dead_letters_of(console.settings.amqp_url, parked, case_id) if parked else []
            dlq_fout = ""
        except Exception as exc:  # the broker is down: the page still shows the case
            log.warning("console.dead_letters_unavailable", error=type(exc).__name__)
            dode_brieven, dlq_fout = [], "De geparkeerde berichten konden niet worden gelezen (RabbitMQ)."
        (brieven, beschikkingen, documenten_fout), opdrachten = (await zaakdetail.documenten(
            console, session.token, zaak)), zaakdetail.opdrachten(zaak, dode_brieven, console.settings.namespace)
        markeringen = {"actief": zaak["actieveElementen"],
                       "incident": sorted({i["elementId"] for i in incidenten if i.get("elementId")}),
                       "klaar": sorted({h["elementId"] for h in zaak["geschiedenis"]})}
        return render(request, "zaak.html", sessie=session, zaak=zaak, versie=versies.get(zaak["definitieHash"]),
                      incidenten=incidenten, markeringen=markeringen, dode_brieven=dode_brieven, dlq_fout=dlq_fout,
                      opdrachten=opdrachten, brieven=brieven, beschikkingen=beschikkingen,
                      documenten_fout=documenten_fout, mag_ingrijpen=session.mag(FUNCTIONEEL_BEHEERDER),
                      parkeerplaats_link=lambda d: zaakdetail.parkeerplaats_link(d, console.settings.namespace))

    @app.get("/definities/{content_hash}/diagram.bpmn", include_in_schema=False)
    async def diagram(content_hash: str, session: SessionDep, proces: str = "") -> Response:
        detail = await console.backends.definitie(session.token, content_hash)
        bestanden = {n: x for n, x in detail["bestanden"].items() if n.endswith(".bpmn")}
        gekozen = next((x for x in bestanden.values() if f'id="{proces}"' in x), None) if proces else None
        if gekozen is None and bestanden:
            gekozen = next(iter(bestanden.values()))
        if gekozen is None:
            raise Refused(404, "Deze definitie heeft geen BPMN-diagram.")
        return Response(gekozen, media_type="application/xml")

    async def _actie(request: Request, session: Session, case_id: str, actie: str, pad: str,
                     details: dict[str, Any]) -> Response:
        form = await form_of(request)
        check_csrf(form, session.csrf)
        if not session.mag(FUNCTIONEEL_BEHEERDER):
            raise Refused(403, "Alleen een functioneel beheerder mag incidenten opnieuw proberen of zaken "
                               "annuleren.")
        voor = await console.backends.zaak(session.token, case_id)
        status, body = await console.backends.actie(session.token, pad)
        if status == 200 and actie == "annuleren":
            uitkomst = "geannuleerd"
        elif status == 200:
            element = next((i.get("elementId") for i in (voor or {}).get("incidenten", [])
                            if i.get("commandId") == details["commando"]), None)
            uitkomst, body = await _afloop(session, case_id, element, body)
        else:
            uitkomst = f"geweigerd ({status}): {body.get('detail') or body.get('title') or 'geen toelichting'}"
        details = {**details, "http_status": status, "status_voor": (voor or {}).get("status"),
                   "status_na": body.get("status")}
        await console.audit.record(session.subject, actie, case_id, uitkomst, details)
        log.info("console.action", action=actie, case_id=case_id, subject=session.subject, outcome=uitkomst,
                 http_status=status)
        return render(request, "uitkomst.html", status=200 if status == 200 else 409, sessie=session,
                      zaak_id=case_id, actie=actie, uitkomst=uitkomst, gelukt=status == 200, details=details,
                      na=body if status == 200 else None)

    @app.post("/zaken/{case_id}/incidenten/{command_id}/opnieuw", include_in_schema=False)
    async def retry(request: Request, case_id: str, command_id: str, session: SessionDep) -> Response:
        q = urllib.parse.quote
        return await _actie(request, session, case_id, "opnieuw proberen",
                            f"/zaken/{q(case_id, safe='')}/incidenten/{q(command_id, safe='')}/opnieuw",
                            {"commando": command_id})

    @app.post("/zaken/{case_id}/annuleren", include_in_schema=False)
    async def cancel(request: Request, case_id: str, session: SessionDep) -> Response:
        form = await form_of(request)
        check_csrf(form, session.csrf)
        if form.get("bevestig") != "ja":
            raise Refused(400, "Bevestig het annuleren: vink het vakje aan.")
        return await _actie(request, session, case_id, "annuleren",
                            f"/zaken/{urllib.parse.quote(case_id, safe='')}/annuleren", {})

    @app.get("/audit", include_in_schema=False)
    async def audit(request: Request, session: SessionDep) -> Response:
        return render(request, "audit.html", sessie=session, regels=await console.audit.recent())
