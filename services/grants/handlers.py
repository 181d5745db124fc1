"""The commands grants handles (bpmn/README.md), each answered exactly once.

Every handler is idempotent: a redelivered command (same id) finds its id in the document it changed and
changes nothing; the reply id is derived from the command id, so even a repeated reply is dropped by the
engine. Budget and caps are changed with guarded updates keyed by the aanvraag id (see repository.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from grants.domain import (
    BeschikkingVerzoek,
    Criteria,
    Grond,
    MandaatOntbreekt,
    Ondertekenaar,
    Regeling,
    grond_gemeentelijk_maximum,
    grond_subsidieplafond,
    stel_beschikking_op,
    stel_vast,
    toets,
    toets_verlenging,
    verdaging_ongeldig,
    weigeringsgronden,
)
from grants.domain.zaak import Weigering, Zaak
from grants.messages import (
    BeschikkingOpstellen,
    FinancieelRegistreren,
    Reserveren,
    Toetsen,
    Vastleggen,
    VaststellingBerekenen,
    VerlengingToetsen,
    VolgnummerIngetrokken,
    VolgnummerToegekend,
    Vrijgeven,
)
from grants.repository import (
    AANGEKONDIGD,
    AANGEVRAAGD,
    AFWEZIG,
    GESLOTEN,
    VRIJGEGEVEN,
    GrantsRepository,
    cap_id,
    ledger_id,
)
from servicekit.broker import EVENTS
from servicekit.commands import Failure, Outcome, apply_command, command_params, reply_to
from servicekit.envelope import CloudEvent, deterministic_id
from servicekit.kalender import amsterdam_dag
from servicekit.logging import get_logger
from servicekit.store import ConcurrencyError, Document, DuplicateKeyError

log = get_logger(__name__)
SERVICE = "grants"
WACHT, BESLOTEN = "wacht", "besloten"


def iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class GrantsHandlers:
    def __init__(self, repo: GrantsRepository, regelingen: dict[str, Regeling], gemeenten: dict[str, str],
                 wake: Callable[[str, Any], None] = lambda _id, _c: None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.repo = repo
        #: Business time (the rehearsal clock in test); commands carry the engine's time in ``command.time``.
        self.clock = clock
        self.regelingen = regelingen
        self.gemeenten = gemeenten
        self.wake = wake
        #: Wakes the allocator (bootstrap sets it): a request was stored or a number given back.
        self.volgorde_wakker: Callable[[], None] = lambda: None
        self._ensured: set[str] = set()  # ledgers and caps this process made sure exist (one upsert each)
        self._bekend = 0  # the highest number this process raised the head's ``bekend`` to (it never drops)

    def gemeente_naam(self, code: str) -> str:
        return self.gemeenten.get(code, code)

    async def _answer(self, command: CloudEvent, aanvraag_id: str,
                      apply: Callable[[Document], Outcome | None]) -> Document:
        doc = await apply_command(self.repo.zaken, aanvraag_id, command, SERVICE, apply,
                                  create=lambda: {"_id": aanvraag_id, "beschikkingen": []})
        self.wake(aanvraag_id, self.repo.zaken.collection)
        return doc

    # ----------------------------------------------------------------------------------------- toetsen

    async def toetsen(self, command: CloudEvent) -> None:
        """ips.aanvraag.toetsen.v1: regulation, competence, decision deadline; recorded on the zaak."""
        p = command_params(Toetsen, command)
        t = toets(list(self.regelingen.values()), p.gemeente_code, p.woongemeente_code, p.aanvraagdatum,
                  p.ontvangen_op)
        regeling = self.regelingen[t.regeling]
        result = {
            "regeling": t.regeling, "regelingVersie": regeling.versie,
            # who decides: "uwv" (ips-cmd-2019, with the gemeente's consent statement) or "gemeente"
            "besluitvormer": regeling.besluitvormer,
            "binnenAanvraagperiode": t.binnen_aanvraagperiode, "bevoegd": t.bevoegd,
            "bevoegdeGemeente": t.bevoegde_gemeente, "beslisdatum": t.beslisdatum.isoformat(),
            "beslistermijnVerstrijktOp": iso(t.beslistermijn_verstrijkt_op), "hersteltermijn": t.hersteltermijn,
            # the statutory end before the Atw moved it: an Awb 4:15 suspension extends this date, not beslisdatum
            "beslistermijnEinde": t.beslistermijn_einde.isoformat(),
            "tariefCents": regeling.tarief(p.traject_type),
            "looptijdMaanden": regeling.looptijd_maanden.get(p.traject_type),
            "betaalschema": [{"moment": b.moment, "percentage": b.percentage} for b in regeling.betaalschema],
            "terugvorderingstermijnJaren": regeling.terugvorderingstermijn_jaren,
        }

        def apply(zaak: Document) -> Outcome:
            zaak.update(regeling=t.regeling, gemeente_code=p.gemeente_code, bevoegde_gemeente=t.bevoegde_gemeente,
                        traject_type=p.traject_type, aanvraagdatum=p.aanvraagdatum.isoformat(), toetsing=result)
            if p.ggz_kvk_nummer:
                zaak["ggz_kvk_nummer"] = p.ggz_kvk_nummer
            return result

        await self._answer(command, p.aanvraag_id, apply)

    # -------------------------------------------------------------------------------------- reserveren

    async def reserveren(self, command: CloudEvent) -> None:
        """ips.budget.reserveren.v1: store the request; the allocator decides it in volgnummer order.

        Grounds that do not depend on the budget (window, type, target group, certificate) and a wrong
        amount are decided here at once. A redelivery (same command id) changes nothing; a new command for
        the same aanvraag replaces the request and is decided again (the ledger keeps at most one
        reservation per aanvraag). A request without a volgnummer (an application completed before numbering
        existed) and one whose number the order has passed are decided at once.
        """
        p = command_params(Reserveren, command)
        regeling = self.regelingen.get(p.regeling)
        now = datetime.now(UTC)
        peildatum = amsterdam_dag(p.volledig_ontvangen_op) if p.volledig_ontvangen_op else p.aanvraagdatum
        request: Document = {
            "_id": p.aanvraag_id, "command_id": command.id, "command": command.to_json().decode(),
            "regeling": p.regeling, "gemeente_code": p.gemeente_code, "traject_type": p.traject_type,
            "bedrag_cents": p.bedrag_cents, "volledig_ontvangen_op": p.volledig_ontvangen_op or
            datetime.combine(p.aanvraagdatum, datetime.min.time(), tzinfo=UTC),
            "ontvangen_door_grants": now, "status": WACHT, "volgnummer": p.volgnummer,
        }
        outcome: Outcome | None = None
        if regeling is None:
            outcome = Failure("IPS-REGELING-001", f"Onbekende regeling {p.regeling}.")
        else:
            request["budgetperiode"] = regeling.budgetperiode(peildatum).id
            tarief = regeling.tarief(p.traject_type)
            criteria = Criteria(p.criteria.doelgroep, p.criteria.wil_betaald_werk, p.criteria.geen_ander_traject,
                                p.criteria.certificaat_geldig_tot)
            gronden = weigeringsgronden(regeling, p.traject_type, p.aanvraagdatum, p.gewenste_startdatum, criteria)
            if tarief is not None and p.bedrag_cents != tarief:
                outcome = Failure("IPS-TARIEF-001", f"Het bedrag {p.bedrag_cents} is niet het tarief {tarief} "
                                                    f"van de regeling {regeling.id} voor {p.traject_type}.")
            elif gronden:
                outcome = self._refusal(request, gronden)
        events = []
        if outcome is not None:
            request.update(status=BESLOTEN, uitkomst=outcome if isinstance(outcome, dict) else
                           {"code": outcome.code, "message": outcome.message}, besloten_op=self.clock())
            events = [(reply_to(command, SERVICE, outcome), EVENTS)]
        eerder = await self._store_request(request, events, command.id)
        self.wake(p.aanvraag_id, self.repo.verzoeken.collection)
        if p.volgnummer is None:
            if outcome is None:
                await self.decide(p.aanvraag_id)
            return
        plaats = await self.repo.plaats(p.volgnummer)
        status = plaats["status"] if plaats is not None else AFWEZIG
        if plaats is not None and plaats.get("aanvraag_id") not in (None, p.aanvraag_id):  # another's number
            log.warning("reservering.volgnummer_van_een_ander", aanvraag_id=p.aanvraag_id, volgnummer=p.volgnummer)
            status = GESLOTEN
        if status in (AFWEZIG, VRIJGEGEVEN):
            # asked for before its announcement came, or after it was given back: the place says so, so a
            # request waits for it (an announced place needs no write: the allocator looks its request up)
            status = await self.repo.plaats_zetten(p.volgnummer, (AFWEZIG, VRIJGEGEVEN), AANGEVRAAGD,
                                                   {"aanvraag_id": p.aanvraag_id}, plaats)
            await self._ken(p.volgnummer)
        # Its turn has passed (closed: skipped or passed), or came already (a new command replaced a request
        # that was decided in turn): at once. The allocator reads the request after it closes a place, we
        # read the place after we stored the request: one of the two sees the other.
        if outcome is None and (status == GESLOTEN or eerder == BESLOTEN):
            log.info("reservering.na_de_beurt", aanvraag_id=p.aanvraag_id, volgnummer=p.volgnummer)
            await self.decide(p.aanvraag_id)
        self.volgorde_wakker()

    async def volgnummer_toegekend(self, event: CloudEvent) -> None:
        """ips.aanvraag.volgnummer_toegekend.v1 (intake): the number's place exists from now on, so the
        requests after it wait for it. Idempotent: a place that exists already is left as it is."""
        p = VolgnummerToegekend.model_validate(event.data)
        await self.repo.plaats_zetten(p.volgnummer, (AFWEZIG,), AANGEKONDIGD,
                                      {"aanvraag_id": p.aanvraag_id, "op": datetime.now(UTC)})
        await self._ken(p.volgnummer)

    async def ingetrokken(self, event: CloudEvent) -> None:
        """ips.aanvraag.ingetrokken.v1 (intake): a numbered application withdrawn before its request came
        gives its place back, so the requests after it need not wait for it. Its request, if the case still
        sends one, is decided in turn or, once the order passed it, at once."""
        p = VolgnummerIngetrokken.model_validate(event.data)
        if p.volgnummer is None:
            return
        if await self.repo.plaats_zetten(p.volgnummer, (AFWEZIG, AANGEKONDIGD), VRIJGEGEVEN,
                                         {"aanvraag_id": p.aanvraag_id}) == VRIJGEGEVEN:
            await self._ken(p.volgnummer)
        self.volgorde_wakker()

    async def _ken(self, nummer: int) -> None:
        """Make the head know ``nummer`` (one write, skipped when this process raised it that far already)."""
        if nummer > self._bekend:
            await self.repo.ken_nummer(nummer)
            self._bekend = nummer

    async def _store_request(self, request: Document, events: list[tuple[CloudEvent, str]],
                             command_id: str) -> str | None:
        """Store (or replace) the request; returns the status of the request it replaced, if any."""
        for _ in range(50):
            try:
                await self.repo.verzoeken.insert(request, events)
                return None
            except DuplicateKeyError:
                existing = await self.repo.verzoeken.get(request["_id"])
            if existing is None:
                continue
            if existing.get("command_id") == command_id:
                return None  # a redelivery: already stored (and decided or waiting)
            replacement = {**request, "revision": existing["revision"], "outbox": existing.get("outbox") or []}
            try:
                await self.repo.verzoeken.replace(replacement, events)
                return str(existing.get("status"))
            except ConcurrencyError:
                continue
        raise ConcurrencyError(f"reserveringsverzoeken/{request['_id']}: too many concurrent changes")

    @staticmethod
    def _refusal(request: Document, gronden: list[Grond]) -> dict[str, Any]:
        return {"gereserveerd": False, "weigeringsgronden": [g.as_dict() for g in gronden],
                "bedragCents": request["bedrag_cents"], "financiering": None,
                "budgetperiode": request.get("budgetperiode"), "regeling": request["regeling"]}

    async def decide(self, request_id: str, request: Document | None = None) -> bool:
        """Decide one waiting request (the allocator calls this in order of receipt; ``request`` as it just read
        it). Each step is keyed by the aanvraag id, so repeating it after a crash has no second effect. Returns
        whether it decided."""
        if request is None:
            request = await self.repo.verzoeken.get(request_id)
        if request is None or request.get("status") != WACHT:
            return False
        regeling = self.regelingen[request["regeling"]]
        aanvraag_id, gemeente, bedrag = request["_id"], request["gemeente_code"], request["bedrag_cents"]
        at = self.clock()
        gronden: list[Grond] = []
        cid = cap_id(regeling.id, gemeente)
        if regeling.cap_per_gemeente is not None:
            if cid not in self._ensured:
                await self.repo.ensure_cap(regeling, gemeente)
                self._ensured.add(cid)
            if not await self.repo.reserve_cap(cid, aanvraag_id, at):
                gronden.append(grond_gemeentelijk_maximum(regeling, self.gemeente_naam(gemeente)))
        if not gronden:
            periode = next(b for b in regeling.budgetperioden if b.id == request["budgetperiode"])
            lid = ledger_id(regeling.id, periode.id)
            if lid not in self._ensured:
                await self.repo.ensure_ledger(regeling, periode.id)
                self._ensured.add(lid)
            if not await self.repo.reserve_budget(lid, aanvraag_id, bedrag, at):
                gronden.append(grond_subsidieplafond(regeling, periode))
                if regeling.cap_per_gemeente is not None:
                    await self.repo.release_cap(cid, aanvraag_id)
        if gronden:
            outcome = self._refusal(request, gronden)
        else:
            outcome = {"gereserveerd": True, "weigeringsgronden": [], "bedragCents": bedrag,
                       "financiering": regeling.financiering(bedrag), "budgetperiode": request["budgetperiode"],
                       "regeling": regeling.id}
        command = CloudEvent.from_json(request["command"])
        request.update(status=BESLOTEN, uitkomst=outcome, besloten_op=at)
        try:
            await self.repo.verzoeken.replace(request, [(reply_to(command, SERVICE, outcome), EVENTS)])
        except ConcurrencyError:
            # decided by someone else meanwhile (two allocators, or the consumer), or replaced by a newer command
            if outcome["gereserveerd"]:
                await self._undo_if_refused(request, regeling)
            return False
        self.wake(aanvraag_id, self.repo.verzoeken.collection)
        log.info("reservering.besloten", aanvraag_id=aanvraag_id, gereserveerd=outcome["gereserveerd"])
        return True

    async def _undo_if_refused(self, request: Document, regeling: Regeling) -> None:
        """We reserved, but the decision written first (the same command, decided at the same moment by
        someone else) refused: money was given back between their try and ours. Nobody was told about our
        reservation, so it goes back too."""
        stored = await self.repo.verzoeken.get(request["_id"])
        if (stored is None or stored.get("status") != BESLOTEN or stored.get("command_id") != request["command_id"]
                or (stored.get("uitkomst") or {}).get("gereserveerd")):
            return
        await self.repo.release_budget(ledger_id(regeling.id, request["budgetperiode"]), request["_id"],
                                       request["bedrag_cents"])
        if regeling.cap_per_gemeente is not None:
            await self.repo.release_cap(cap_id(regeling.id, request["gemeente_code"]), request["_id"])
        log.warning("reservering.dubbel_besloten", aanvraag_id=request["_id"])

    # --------------------------------------------------------------------------- vastleggen, vrijgeven

    async def _reservation(self, aanvraag_id: str) -> tuple[Document, str] | None:
        request = await self.repo.verzoeken.get(aanvraag_id)
        if request is None or request.get("status") != BESLOTEN or not (request.get("uitkomst") or {}).get(
                "gereserveerd"):
            return None
        return request, ledger_id(request["regeling"], request["budgetperiode"])

    async def vastleggen(self, command: CloudEvent) -> None:
        """ips.budget.vastleggen.v1: UWV confirms; the reservation becomes a commitment (once)."""
        p = command_params(Vastleggen, command)
        outcome: Outcome
        found = await self._reservation(p.aanvraag_id)
        entry = None
        if found is not None:
            request, lid = found
            entry = await self.repo.commit_budget(lid, p.aanvraag_id, request["bedrag_cents"], command.time)
        if found is None or entry is None:
            outcome = Failure("IPS-BUDGET-001", "Er is geen budgetreservering voor deze aanvraag.")
        else:
            outcome = {"bevestigd": True, "bedragCents": entry["bedragCents"],
                       "budgetperiode": found[0]["budgetperiode"],
                       "bevestigdOp": iso(entry.get("vastgelegdOp") or command.time)}

        def apply(zaak: Document) -> Outcome:
            if isinstance(outcome, dict):
                zaak["vergoeding"] = outcome
            return outcome

        await self._answer(command, p.aanvraag_id, apply)

    async def vrijgeven(self, command: CloudEvent) -> None:
        """ips.budget.vrijgeven.v1: give the reservation (and the gemeente's cap place) back; idempotent."""
        p = command_params(Vrijgeven, command)
        found = await self._reservation(p.aanvraag_id)
        if found is not None:
            request, lid = found
            await self.repo.release_budget(lid, p.aanvraag_id, request["bedrag_cents"])
            regeling = self.regelingen.get(request["regeling"])
            if regeling is not None and regeling.cap_per_gemeente is not None:
                await self.repo.release_cap(cap_id(regeling.id, request["gemeente_code"]), p.aanvraag_id)
            await self.repo.mark_released(p.aanvraag_id, command.time)

        def apply(zaak: Document) -> Outcome:
            if found is not None:
                zaak["vrijgegeven"] = {"op": iso(command.time), "reden": p.reden}
            return {}

        await self._answer(command, p.aanvraag_id, apply)

    # ------------------------------------------------------------------- the trajectory after the grant

    async def verlenging_toetsen(self, command: CloudEvent) -> None:
        """ips.traject.verlenging_toetsen.v1: at most the regulation's maximum, and only one extension (the
        zaak's own count of granted extensions counts too). Recorded on the zaak."""
        p = command_params(VerlengingToetsen, command)
        regeling = self.regelingen.get(p.regeling)

        def apply(zaak: Document) -> Outcome:
            if regeling is None:
                return Failure("IPS-REGELING-001", f"Onbekende regeling {p.regeling}.")
            z = Zaak(zaak)
            t = toets_verlenging(regeling, p.maanden, p.einddatum, max(p.eerdere_verlengingen, z.verlengingen))
            return z.leg_verlengingstoets_vast(t, p.maanden, p.einddatum, iso(command.time))

        await self._answer(command, p.aanvraag_id, apply)

    async def vaststelling_berekenen(self, command: CloudEvent) -> None:
        """ips.vaststelling.berekenen.v1: the final amount under the regulation's vaststellingsregel."""
        p = command_params(VaststellingBerekenen, command)
        regeling = self.regelingen.get(p.regeling)

        def apply(zaak: Document) -> Outcome:
            if regeling is None:
                return Failure("IPS-REGELING-001", f"Onbekende regeling {p.regeling}.")
            v = stel_vast(regeling.vaststellingsregel, p.bedrag_cents, p.startdatum, p.geplande_einddatum,
                          p.werkelijke_einddatum, p.looptijd_maanden)
            return Zaak(zaak).leg_vaststelling_vast(v, p.bedrag_cents, p.startdatum,
                                                    p.werkelijke_einddatum or p.geplande_einddatum, iso(command.time))

        await self._answer(command, p.aanvraag_id, apply)

    async def financieel_registreren(self, command: CloudEvent) -> None:
        """ips.budget.financieel_registreren.v1: the case's paid / recovered / vastgesteld totals, on the zaak
        and on the ledger of its budget period (adjusted by the difference; a retry counts nothing twice)."""
        p = command_params(FinancieelRegistreren, command)
        zaak = await self.repo.zaken.get(p.aanvraag_id)
        if zaak is not None and command.id in (zaak.get("applied") or []):
            return  # answered before
        found = await self._reservation(p.aanvraag_id)
        outcome: Outcome
        entry: dict[str, Any] | None = None
        if found is None:
            outcome = Failure("IPS-BUDGET-001", "Er is geen budgetreservering voor deze aanvraag.")
        else:
            lid = found[1]
            entry = await self.repo.register_financial(lid, p.aanvraag_id, command.id, {
                "betaald_cents": p.betaald_cents, "teruggevorderd_cents": p.teruggevorderd_cents,
                "vastgesteld_cents": p.vastgesteld_cents})
            outcome = {}

        def apply(doc: Document) -> Outcome:
            if entry is not None and found is not None:
                doc["financieel"] = {"betaald_cents": entry["betaald_cents"],
                                     "teruggevorderd_cents": entry["teruggevorderd_cents"],
                                     "vastgesteld_cents": entry["vastgesteld_cents"],
                                     "budgetperiode": found[0]["budgetperiode"], "op": iso(command.time)}
            return outcome

        await self._answer(command, p.aanvraag_id, apply)

    # ---------------------------------------------------------------------------------------- beschikking

    async def beschikking_opstellen(self, command: CloudEvent) -> None:
        """ips.beschikking.opstellen.v1: take the decision (stored once per command, as data: notifications
        writes and keeps the letter) and list it on the zaak.
        Fails with IPS-MANDAAT-001 when the signatory's sub-mandate does not cover the kind."""
        p = command_params(BeschikkingOpstellen, command)
        regeling = self.regelingen.get(p.regeling)
        zaak = await self.repo.zaken.get(p.aanvraag_id) or {}
        beschikking_id = deterministic_id("beschikking", command.id)
        datum = amsterdam_dag(command.time)
        outcome: Outcome
        stored: Document | None = None
        if regeling is None:
            outcome = Failure("IPS-REGELING-001", f"Onbekende regeling {p.regeling}.")
        elif p.soort == "verdaging" and (
                fout := verdaging_ongeldig(p.nieuwe_beslisdatum, p.huidige_beslisdatum, datum)) is not None:
            outcome = Failure("IPS-VERDAGING-001", fout)
        elif p.soort == "toekenning" and regeling.besluitvormer == "uwv" and not (
                p.instemming and p.instemming.verleend and p.instemming.gemeente_code == p.gemeente_code):
            # ips-cmd-2019: UWV grants only with the consent statement of the gemeente of the application
            outcome = Failure("IPS-INSTEMMING-001",
                              "Toekenning vraagt de instemming (toestemmingsverklaring) van de gemeente.")
        else:
            uit_zaak = Zaak(zaak).beschikkingsgegevens(
                p.soort, regeling, traject_type=p.traject_type, bedrag_cents=p.bedrag_cents,
                nieuwe_einddatum=p.nieuwe_einddatum, maanden=p.maanden, vastgesteld_cents=p.vastgesteld_cents,
                ggz_kvk_nummer=p.ggz_kvk_nummer)
            traject_type, bedrag = uit_zaak.traject_type, uit_zaak.bedrag_cents
            nieuwe_einddatum, maanden = uit_zaak.nieuwe_einddatum, uit_zaak.maanden
            ondertekenaar = (Ondertekenaar(p.ondertekenaar.subject, p.ondertekenaar.naam,
                                           frozenset(p.ondertekenaar.mandaten)) if p.ondertekenaar else None)
            kenmerk = f"IPS-{p.gemeente_code}-{datum.year}-{beschikking_id[:8].upper()}"
            verzoek = BeschikkingVerzoek(
                aanvraag_id=p.aanvraag_id, soort=p.soort, gemeente_code=p.gemeente_code,
                gemeente_naam=self.gemeente_naam(p.gemeente_code), regeling=regeling, traject_type=traject_type,
                bedrag_cents=bedrag, gronden=tuple(Grond(g.code, g.tekst) for g in p.gronden or []),
                motivering=p.motivering or "", ondertekenaar=ondertekenaar, datum=datum, kenmerk=kenmerk,
                ggz_kvk_nummer=uit_zaak.ggz_kvk_nummer,
                nieuwe_beslisdatum=p.nieuwe_beslisdatum,
                van_gemeente_naam=self.gemeente_naam(p.van_gemeente_code) if p.van_gemeente_code else None,
                naar_gemeente_naam=self.gemeente_naam(p.naar_gemeente_code) if p.naar_gemeente_code else None,
                nieuwe_einddatum=nieuwe_einddatum, maanden=maanden, vastgesteld_cents=uit_zaak.vastgesteld_cents,
                betaald_cents=uit_zaak.betaald_cents)
            b = None
            try:
                b = stel_beschikking_op(verzoek)
            except MandaatOntbreekt as exc:
                outcome = Failure("IPS-MANDAAT-001", str(exc))
            else:
                outcome = _als_failure(Zaak(zaak).verlenging_weigering(beschikking_id, nieuwe_einddatum)
                                       if p.soort == "verlenging" else None)
            if b is not None and isinstance(outcome, dict):
                stored = await self._store_beschikking({
                    "_id": beschikking_id, "aanvraag_id": p.aanvraag_id, "command_id": command.id,
                    "kenmerk": b.kenmerk, "soort": b.soort, "datum": b.datum.isoformat(),
                    "bezwaartermijn_einde": b.bezwaartermijn_einde.isoformat() if b.bezwaartermijn_einde else None,
                    "bedrag_cents": b.bedrag_cents, "financiering": b.financiering, "mandaat": b.mandaat,
                    "gemeente_code": p.gemeente_code, "van_gemeente_code": p.van_gemeente_code,
                    "naar_gemeente_code": p.naar_gemeente_code, "ggz_kvk_nummer": verzoek.ggz_kvk_nummer,
                    "regeling": regeling.id, "traject_type": traject_type,
                    "gronden": [g.as_dict() for g in verzoek.gronden],
                    "ondertekenaar": ({"subject": ondertekenaar.subject, "naam": ondertekenaar.naam}
                                      if ondertekenaar else None),
                    "nieuwe_beslisdatum": p.nieuwe_beslisdatum.isoformat() if p.nieuwe_beslisdatum else None,
                    "nieuwe_einddatum": nieuwe_einddatum.isoformat() if nieuwe_einddatum else None,
                    "maanden": maanden, "verleend_cents": bedrag if p.soort == "vaststelling" else None,
                    "vastgesteld_cents": b.bedrag_cents if p.soort == "vaststelling" else None,
                    "instemming": ({"kenmerk": p.instemming.kenmerk, "datum": p.instemming.datum.isoformat(),
                                    "gemeenteCode": p.instemming.gemeente_code,
                                    "verleend": p.instemming.verleend} if p.instemming else None),
                    "brief": b.brief, "opgesteld_op": self.clock()})
                outcome = beschikking_result(stored)

        def apply(doc: Document) -> Outcome:
            if stored is None:
                return outcome
            weigering = Zaak(doc).registreer_beschikking(stored)
            return outcome if weigering is None else _als_failure(weigering)

        await self._answer(command, p.aanvraag_id, apply)

    async def _store_beschikking(self, doc: Document) -> Document:
        try:
            return await self.repo.beschikkingen.insert(doc)
        except DuplicateKeyError:
            existing = await self.repo.beschikkingen.get(doc["_id"])
            assert existing is not None
            return existing  # written by an earlier attempt of the same command: keep that one


def _als_failure(weigering: Weigering | None) -> Outcome:
    """A rule of the zaak (domain.zaak) broken: the engine's failure; otherwise an empty outcome."""
    return {} if weigering is None else Failure(weigering.code, weigering.melding)


def beschikking_result(doc: Document) -> dict[str, Any]:
    result = {"beschikkingId": doc["_id"], "kenmerk": doc["kenmerk"], "soort": doc["soort"], "datum": doc["datum"],
              "bezwaartermijnEinde": doc.get("bezwaartermijn_einde"), "bedragCents": doc["bedrag_cents"],
              "financiering": doc.get("financiering"), "mandaat": doc.get("mandaat"),
              "gemeenteCode": doc.get("gemeente_code")}
    # The decision as data; its words, text and PDF are notifications' (the one copy of the letter, README
    # "Letters"). A beschikking stored by an older grants still has its text.
    if doc.get("brief") is not None:
        result["brief"] = doc["brief"]
    if doc.get("tekst"):
        result["tekst"] = doc["tekst"]
    if doc.get("nieuwe_einddatum"):
        result["nieuweEinddatum"] = doc["nieuwe_einddatum"]
    if doc.get("gronden"):  # the grounds of a refusal, as codes and texts (the portal shows them)
        result["gronden"] = doc["gronden"]
    if doc.get("nieuwe_beslisdatum"):  # a 4:14 notice: the new decision date
        result["nieuweBeslisdatum"] = doc["nieuwe_beslisdatum"]
    if doc.get("instemming"):  # ips-cmd-2019: the gemeente's consent statement the grant was taken with
        result["instemming"] = doc["instemming"]
    if doc.get("maanden") is not None:
        result["maanden"] = doc["maanden"]
    if doc.get("vastgesteld_cents") is not None:
        result.update(vastgesteldCents=doc["vastgesteld_cents"], verleendCents=doc.get("verleend_cents"),
                      verschilCents=(doc.get("verleend_cents") or 0) - doc["vastgesteld_cents"])
    return result

