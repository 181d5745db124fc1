"""Incidents: open incidents grouped by signature (element, error code, message); retry, cancel, or set variables
and retry, for one case or for every case of a group, each with its real outcome.

"Every case of a group" is read from the engine when the action runs (GET /incidenten), not from the page the
user saw: a group of 3,000 cases is retried whole, and a case whose incident was resolved meanwhile is left alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from console.bootstrap import Console, Session
from console.web import Refused, SessionDep, check_csrf, form_of, render
from servicekit.auth import FUNCTIONEEL_BEHEERDER
from servicekit.logging import get_logger
from servicekit.zaakvariabelen import BEWERKBAAR

log = get_logger(__name__)
#: How long the console follows retried cases for their outcome before it reports "no answer yet".
VOLG_SECONDEN = 15.0
#: At most this many engine calls at a time for one bulk action (the engine keeps serving the services).
GELIJKTIJDIG = 8
#: The kinds of outcome, as the summary names them.
SOORTEN = (("opgelost", "opgelost"), ("geannuleerd", "geannuleerd"), ("mislukt", "opnieuw mislukt"),
           ("wacht", "nog geen antwoord"), ("geweigerd", "geweigerd"))
#: The variables form: at most this much JSON (the engine refuses more, too).
MAX_JSON = 20_000


def signatuur(incident: dict[str, Any]) -> str:
    """A group's key: the same element, error code and message."""
    sleutel = json.dumps([incident.get("elementId"), incident.get("errorCode"), incident.get("message")])
    return hashlib.sha256(sleutel.encode()).hexdigest()[:16]


def groepen(incidenten: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Open incidents by signature, largest group first."""
    out: dict[str, dict[str, Any]] = {}
    for i in incidenten:
        g = out.setdefault(signatuur(i), {
            "sig": signatuur(i), "elementId": i.get("elementId"), "errorCode": i.get("errorCode"),
            "message": i.get("message"), "commandTypes": set(), "zaken": set(), "processen": set(),
            "eerste": i.get("at"), "laatste": i.get("at")})
        g["commandTypes"].add(i.get("commandType") or "")
        g["zaken"].add(i["zaakId"])
        g["processen"].add(i.get("processId") or "")
        if i.get("at"):
            g["eerste"] = min(filter(None, [g["eerste"], i["at"]]))
            g["laatste"] = max(filter(None, [g["laatste"], i["at"]]))
    return sorted(({**g, "aantal": len(g["zaken"]), "commandTypes": sorted(g["commandTypes"]),
                    "processen": sorted(g["processen"])} for g in out.values()),
                  key=lambda g: (-g["aantal"], str(g["elementId"])))


@dataclass
class Poging:
    """One case of a bulk action: what was asked and what came of it."""

    zaak: str
    commando: str
    element: str | None
    voor: dict[str, Any] = field(default_factory=dict)
    uitkomst: str = ""
    soort: str = ""  # opgelost | mislukt | wacht | geweigerd | geannuleerd
    http_status: int = 0


def afloop(zaak: dict[str, Any], element: str | None) -> tuple[str, str] | None:
    """The outcome of a retry as the case shows it now; None while it is still on its way. The retried incident
    is resolved by the retry itself, so an open incident on the element is the new attempt's."""
    nieuw = [i for i in zaak.get("incidenten", []) if not i.get("resolved") and i.get("elementId") == element]
    if nieuw:
        fout = " ".join(filter(None, [nieuw[-1].get("errorCode"), nieuw[-1].get("message")])) or "onbekend"
        return "mislukt", f"opnieuw mislukt: {fout}"
    if zaak.get("status") != "running" or element not in zaak.get("actieveElementen", []):
        return "opgelost", "opgelost: de zaak is verder"
    return None


async def _per_stuk(items: list[Poging], werk: Callable[[Poging], Awaitable[None]]) -> None:
    poort = asyncio.Semaphore(GELIJKTIJDIG)

    async def een(p: Poging) -> None:
        async with poort:
            await werk(p)
    await asyncio.gather(*(een(p) for p in items))


def variabelen_uit(form: dict[str, str]) -> dict[str, Any]:
    """The variables form as a JSON object (empty: no change). Refused (400) when it is not one; the text is not
    quoted back."""
    tekst = form.get("variabelen", "").strip()
    if not tekst:
        return {}
    if len(tekst) > MAX_JSON:
        raise Refused(400, f"De variabelen zijn te lang (meer dan {MAX_JSON} tekens).")
    try:
        waarde = json.loads(tekst)
    except ValueError as exc:
        raise Refused(400, f"De variabelen zijn geen geldige JSON (regel {getattr(exc, 'lineno', '?')}, kolom "
                           f"{getattr(exc, 'colno', '?')}). Er is niets gewijzigd.") from exc
    if not isinstance(waarde, dict) or not waarde:
        raise Refused(400, 'Geef de variabelen als JSON-object, bijvoorbeeld {"gemeenteCode": "0957"}. Er is '
                           "niets gewijzigd.")
    return waarde


def _geweigerd(status: int, body: dict[str, Any]) -> str:
    redenen = "; ".join(f"{p.get('name')}: {p.get('reason')}" for p in body.get("invalidParams") or [])
    return (f"geweigerd ({status}): {body.get('detail') or body.get('title') or 'geen toelichting'}"
            + (f" ({redenen})" if redenen else ""))


def routes(app: FastAPI, console: Console) -> None:
    async def _groep(session: Session, sig: str, zaak: str = "") -> list[dict[str, Any]]:
        """The open incidents of this group now, from the engine (every case, not a page of them)."""
        return [i for i in await console.backends.incidenten(session.token)
                if signatuur(i) == sig and (not zaak or i["zaakId"] == zaak)]

    async def _volg(session: Session, pogingen: list[Poging]) -> None:
        """Follow the retried cases until each has resolved or failed again, or time is up."""
        open_ = [p for p in pogingen if p.soort == "wacht"]
        deadline = asyncio.get_running_loop().time() + VOLG_SECONDEN
        while open_:
            async def kijk(p: Poging) -> None:
                zaak = await console.backends.zaak(session.token, p.zaak)
                stand = afloop(zaak, p.element) if zaak else ("opgelost", "de zaak bestaat niet meer")
                if stand:
                    p.soort, p.uitkomst = stand
            await _per_stuk(open_, kijk)
            open_ = [p for p in open_ if p.soort == "wacht"]
            if not open_ or asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(0.5)
        for p in open_:
            p.uitkomst = f"opnieuw verstuurd; nog geen antwoord na {VOLG_SECONDEN:.0f} s"

    async def _vastleggen(session: Session, actie: str, sig: str, pogingen: list[Poging],
                          variabelen: dict[str, Any]) -> None:
        for p in pogingen:
            details: dict[str, Any] = {"commando": p.commando, "element": p.element, "groep": sig,
                                       "http_status": p.http_status}
            if variabelen:
                details["voor"] = {k: p.voor.get(k) for k in variabelen}
                details["na"] = variabelen
            await console.audit.record(session.subject, actie, p.zaak, p.uitkomst, details)
            log.info("console.action", action=actie, case_id=p.zaak, subject=session.subject, outcome=p.soort,
                     http_status=p.http_status, group=sig, variables=sorted(variabelen))

    def _mag(session: Session) -> None:
        if not session.mag(FUNCTIONEEL_BEHEERDER):
            raise Refused(403, "Alleen een functioneel beheerder mag incidenten opnieuw proberen, variabelen "
                               "wijzigen of zaken annuleren.")

    @app.get("/incidenten", include_in_schema=False)
    async def overzicht(request: Request, session: SessionDep) -> Response:
        return render(request, "incidenten.html", sessie=session,
                      groepen=groepen(await console.backends.incidenten(session.token)))

    @app.get("/incidenten/{sig}", include_in_schema=False)
    async def groep(request: Request, sig: str, session: SessionDep) -> Response:
        rijen = sorted(await _groep(session, sig), key=lambda i: (str(i.get("at")), i["zaakId"]))
        if not rijen:
            raise Refused(404, "Deze groep heeft geen open incidenten (meer).")
        [g] = groepen(rijen)
        bewerkbaar = sorted(set().union(*(BEWERKBAAR.get(p, frozenset()) for p in g["processen"])))
        return render(request, "incidentgroep.html", sessie=session, g=g, rijen=rijen, bewerkbaar=bewerkbaar,
                      mag_ingrijpen=session.mag(FUNCTIONEEL_BEHEERDER))

    @app.post("/incidenten/{sig}/opnieuw", include_in_schema=False)
    async def opnieuw(request: Request, sig: str, session: SessionDep) -> Response:
        form = await form_of(request)
        check_csrf(form, session.csrf)
        _mag(session)
        variabelen = variabelen_uit(form)
        pogingen = [Poging(i["zaakId"], i["commandId"], i.get("elementId"))
                    for i in await _groep(session, sig, form.get("zaak", ""))]
        if not pogingen:
            raise Refused(409, "Er zijn geen open incidenten (meer) in deze groep; niets opnieuw geprobeerd.")

        async def probeer(p: Poging) -> None:
            q = urllib.parse.quote
            if variabelen:
                p.voor = ((await console.backends.zaak(session.token, p.zaak)) or {}).get("variabelen", {})
            p.http_status, body = await console.backends.actie(
                session.token, f"/zaken/{q(p.zaak, safe='')}/incidenten/{q(p.commando, safe='')}/opnieuw",
                {"variabelen": variabelen} if variabelen else None)
            if p.http_status != 200:
                p.soort, p.uitkomst = "geweigerd", _geweigerd(p.http_status, body)
            else:
                p.soort, p.uitkomst = (afloop(body, p.element) or ("wacht", ""))
        await _per_stuk(pogingen, probeer)
        await _volg(session, pogingen)
        actie = "variabelen wijzigen en opnieuw proberen" if variabelen else "opnieuw proberen"
        await _vastleggen(session, actie, sig, pogingen, variabelen)
        return _uitkomsten(request, session, actie, sig, pogingen)

    @app.post("/incidenten/{sig}/annuleren", include_in_schema=False)
    async def annuleren(request: Request, sig: str, session: SessionDep) -> Response:
        form = await form_of(request)
        check_csrf(form, session.csrf)
        _mag(session)
        if form.get("bevestig") != "ja":
            raise Refused(400, "Bevestig het annuleren: vink het vakje aan.")
        pogingen = [Poging(i["zaakId"], i["commandId"], i.get("elementId"))
                    for i in await _groep(session, sig, form.get("zaak", ""))]
        if not pogingen:
            raise Refused(409, "Er zijn geen open incidenten (meer) in deze groep; niets geannuleerd.")

        async def annuleer(p: Poging) -> None:
            p.http_status, body = await console.backends.actie(
                session.token, f"/zaken/{urllib.parse.quote(p.zaak, safe='')}/annuleren")
            p.soort, p.uitkomst = (("geannuleerd", "geannuleerd") if p.http_status == 200
                                   else ("geweigerd", _geweigerd(p.http_status, body)))
        await _per_stuk(pogingen, annuleer)
        await _vastleggen(session, "annuleren", sig, pogingen, {})
        return _uitkomsten(request, session, "annuleren", sig, pogingen)

    def _uitkomsten(request: Request, session: Session, actie: str, sig: str, pogingen: list[Poging]) -> Response:
        telling: dict[str, int] = {}
        for p in pogingen:
            telling[p.soort] = telling.get(p.soort, 0) + 1
        delen = [f"{telling[soort]} {tekst}" for soort, tekst in SOORTEN if telling.get(soort)]
        return render(request, "uitkomsten.html", sessie=session, actie=actie, sig=sig,
                      pogingen=sorted(pogingen, key=lambda p: p.zaak),
                      samenvatting=f"{len(pogingen)} zaken: {', '.join(delen)}.",
                      alles_goed=telling.get("opgelost", 0) + telling.get("geannuleerd", 0) == len(pogingen))
