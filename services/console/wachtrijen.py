"""Queues and dead letters: per queue ready, unacked, consumers, rates, retrying, parked; per parked message why
it was parked, its headers and body without personal data, and its case; replay (one or in bulk, rate-limited,
with publisher confirms) and purge (typed confirmation). Viewers look; only functioneel beheer acts (403)."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

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

    async def _eenmaal(form: dict[str, str], naam: str) -> None:
        """Refuses (409) a form sent before: a refreshed answer page must not replay or purge a second time. Checked
        after the form's own checks, so a form sent back to correct it is still taken."""
        if form.get("eenmalig") and not await console.formulieren.eerste_keer(form["eenmalig"]):
            raise Refused(409, "Dit formulier is al verstuurd (de pagina vernieuwd?); er is niets opnieuw gedaan.",
                          verder=(f"/wachtrijen/{urllib.parse.quote(naam)}/geparkeerd",
                                  f"Naar de parkeerplaats van {naam}, zoals die nu is"))

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
                      terugzettingen=await console.terugzettingen.recent(naam),
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
        if limit < 1:
            raise Refused(400, "Het aantal is ten minste 1 (leeg: alle).")
        await _eenmaal(form, naam)
        if ids is None:  # the whole lot (up to the limit) in the background; its page shows the progress
            taak = await console.terugzettingen.begin(naam, session.subject, limit if form.get("aantal") else None)
            console.op_achtergrond(_alles_terugzetten(taak, rij, limit, session.subject))
            log.info("console.action", action="terugzetten gestart", queue=naam, subject=session.subject,
                     limit=limit)
            return RedirectResponse(f"/wachtrijen/{urllib.parse.quote(naam)}/terugzettingen/{taak}",
                                    status_code=303)
        gedaan = await _parkeerplaats(rij).terugzetten(ids, 1, console.settings.console_replay_per_second)
        await _vastleggen(session.subject, naam, gedaan)
        log.info("console.action", action="terugzetten", queue=naam, subject=session.subject, count=len(gedaan))
        if not gedaan:
            raise Refused(409, "Dit bericht staat niet (meer) op de parkeerplaats; er is niets teruggezet.")
        return render(request, "teruggezet.html", sessie=session, w=rij, gedaan=gedaan)

    async def _vastleggen(wie: str, naam: str, gedaan: list[dict[str, Any]]) -> None:
        for bericht in gedaan:
            await console.audit.record(wie, "terugzetten", bericht.get("zaak") or "", "teruggezet", {
                "wachtrij": naam, "bericht": bericht["id"], "type": bericht["type"], "reden": bericht["reden"],
                "keer_teruggezet_voor": bericht["teruggezet"]})

    async def _alles_terugzetten(taak: str, rij: dict[str, Any], limit: int, wie: str) -> None:
        """The replay of a whole lot: progress on its document about once a second, each replayed message in the
        audit log as it goes, the outcome at the end (or why it stopped)."""
        naam = rij["naam"]
        gedaan: list[dict[str, Any]] = []
        totaal: list[int] = []
        klaar = asyncio.Event()

        async def bijhouden() -> None:
            vastgelegd = 0
            while True:
                stop = klaar.is_set()
                nieuw, vastgelegd = gedaan[vastgelegd:], len(gedaan)
                await _vastleggen(wie, naam, nieuw)
                await console.terugzettingen.voortgang(taak, vastgelegd, min(totaal[0], limit) if totaal else None)
                if stop:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(klaar.wait(), 1.0)

        volger = asyncio.create_task(bijhouden())
        fout = ""
        try:
            await _parkeerplaats(rij).terugzetten(None, limit, console.settings.console_replay_per_second,
                                                  voortgang=gedaan.append, bij_start=totaal.append)
        except asyncio.CancelledError:  # the console stops (its lifespan cancels the work it still holds)
            fout = "de console stopte"
            raise
        except Exception as exc:  # the broker went away: what is not replayed stays parked
            fout = f"{type(exc).__name__}: de verbinding met RabbitMQ viel weg"
            log.warning("console.replay_failed", queue=naam, error=type(exc).__name__, done=len(gedaan))
        finally:
            klaar.set()
            try:
                await volger
            finally:
                await console.terugzettingen.einde(taak, gedaan, min(totaal[0], limit) if totaal else 0, fout)
        log.info("console.action", action="terugzetten", queue=naam, subject=wie, count=len(gedaan))

    @app.get("/wachtrijen/{naam}/terugzettingen/{taak}", include_in_schema=False)
    async def terugzetting(request: Request, naam: str, taak: str, session: SessionDep) -> Response:
        doc = await console.terugzettingen.get(taak)
        if doc is None or doc["wachtrij"] != naam:
            raise Refused(404, "Geen terugzetting met dit kenmerk.")
        return render(request, "terugzetting.html", sessie=session, t=doc, naam=naam)

    @app.post("/wachtrijen/{naam}/legen", include_in_schema=False)
    async def legen(request: Request, naam: str, session: SessionDep) -> Response:
        form, rij = await _handeling(request, session, naam)
        if form.get("bevestiging", "").strip() != naam:
            raise Refused(400, f"Typ de naam van de wachtrij ({naam}) om de parkeerplaats te legen; er is niets "
                               "verwijderd.")
        await _eenmaal(form, naam)
        weg = await _parkeerplaats(rij).legen()
        await console.audit.record(session.subject, "parkeerplaats legen", "", f"{weg} berichten verwijderd",
                                   {"wachtrij": naam, "aantal": weg})
        log.info("console.action", action="legen", queue=naam, subject=session.subject, count=weg)
        return render(request, "teruggezet.html", sessie=session, w=rij, gedaan=[], geleegd=weg)
