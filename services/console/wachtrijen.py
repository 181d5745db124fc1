"""Queues and dead letters: per queue ready, unacked, consumers, rates, retrying, parked; per parked message why
it was parked, its headers and body without personal data, and its case; replay (one or in bulk, rate-limited,
with publisher confirms) and purge (typed confirmation). Viewers look; only functioneel beheer acts (403)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from console.backends import BackendError
from console.bootstrap import Console, Session
from console.dlq import PEEK, Parkeerplaats
from console.web import Refused, SessionDep, check_csrf, form_of, render
from servicekit.auth import FUNCTIONEEL_BEHEERDER
from servicekit.logging import get_logger

log = get_logger(__name__)


def routes(app: FastAPI, console: Console) -> None:
    async def _wachtrij(naam: str) -> dict[str, Any]:
        """A queue of this namespace with a parking lot, by its short name; 404 for anything else."""
        rij = next((w for w in await console.backends.wachtrijen() if w["naam"] == naam and w["dlq"]), None)
        if rij is None:
            raise Refused(404, "Geen wachtrij met een parkeerplaats met deze naam.")
        return rij

    def _parkeerplaats(rij: dict[str, Any]) -> Parkeerplaats:
        return Parkeerplaats(console.settings.amqp_url, console.settings.namespace, rij["volledig"])

    async def _handeling(request: Request, session: Session, naam: str) -> tuple[dict[str, str], dict[str, Any]]:
        """The form of a replay or purge (CSRF checked), refused (403) for anyone but functioneel beheer; and its
        queue."""
        form = await form_of(request)
        check_csrf(form, session.csrf)
        if not session.mag(FUNCTIONEEL_BEHEERDER):
            raise Refused(403, "Alleen een functioneel beheerder mag berichten terugzetten of een parkeerplaats legen.")
        return form, await _wachtrij(naam)

    @app.get("/wachtrijen", include_in_schema=False)
    async def overzicht(request: Request, session: SessionDep) -> Response:
        try:
            rijen, fout = await console.backends.wachtrijen(), ""
        except BackendError as exc:
            rijen, fout = [], str(exc)
        return render(request, "wachtrijen.html", sessie=session, wachtrijen=rijen, fout=fout)

    @app.get("/wachtrijen/{naam}/geparkeerd", include_in_schema=False)
    async def geparkeerd(request: Request, naam: str, session: SessionDep) -> Response:
        rij = await _wachtrij(naam)
        totaal, berichten = await _parkeerplaats(rij).lees(PEEK)
        return render(request, "geparkeerd.html", sessie=session, w=rij, totaal=totaal, berichten=berichten,
                      peek=PEEK, mag_ingrijpen=session.mag(FUNCTIONEEL_BEHEERDER),
                      per_seconde=console.settings.console_replay_per_second)

    @app.post("/wachtrijen/{naam}/terugzetten", include_in_schema=False)
    async def terugzetten(request: Request, naam: str, session: SessionDep) -> Response:
        form, rij = await _handeling(request, session, naam)
        ids = {form["bericht"]} if form.get("bericht") else None
        if ids is None and form.get("alle") != "ja":
            raise Refused(400, "Kies één bericht of bevestig dat u alle geparkeerde berichten wilt terugzetten.")
        try:
            limit = min(int(form.get("aantal") or console.settings.console_replay_max),
                        console.settings.console_replay_max)
        except ValueError as exc:
            raise Refused(400, "Het aantal is geen getal.") from exc
        gedaan = await _parkeerplaats(rij).terugzetten(ids, max(1, limit), console.settings.console_replay_per_second)
        for bericht in gedaan:
            await console.audit.record(session.subject, "terugzetten", bericht.get("zaak") or "", "teruggezet", {
                "wachtrij": naam, "bericht": bericht["id"], "type": bericht["type"], "reden": bericht["reden"],
                "keer_teruggezet_voor": bericht["teruggezet"]})
        log.info("console.action", action="terugzetten", queue=naam, subject=session.subject, count=len(gedaan))
        if ids is not None and not gedaan:
            raise Refused(409, "Dit bericht staat niet (meer) op de parkeerplaats; er is niets teruggezet.")
        return render(request, "teruggezet.html", sessie=session, w=rij, gedaan=gedaan)

    @app.post("/wachtrijen/{naam}/legen", include_in_schema=False)
    async def legen(request: Request, naam: str, session: SessionDep) -> Response:
        form, rij = await _handeling(request, session, naam)
        if form.get("bevestiging", "").strip() != naam:
            raise Refused(400, f"Typ de naam van de wachtrij ({naam}) om de parkeerplaats te legen; er is niets "
                               "verwijderd.")
        weg = await _parkeerplaats(rij).legen()
        await console.audit.record(session.subject, "parkeerplaats legen", "", f"{weg} berichten verwijderd",
                                   {"wachtrij": naam, "aantal": weg})
        log.info("console.action", action="legen", queue=naam, subject=session.subject, count=weg)
        return render(request, "teruggezet.html", sessie=session, w=rij, gedaan=[], geleegd=weg)
