"""The commands grants handles (bpmn/README.md), each answered exactly once.

Every handler is idempotent: a redelivered command (same id) finds its id in the document it changed and
changes nothing; the reply id is derived from the command id, so even a repeated reply is dropped by the
engine. Budget and caps are changed with guarded updates keyed by the aanvraag id (see repository.py). The
reservation requests and their order of receipt are volgorde.py's (``self.reserveringen``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from grants.domain import (
    BeschikkingVerzoek,
    Grond,
    MandaatOntbreekt,
    Ondertekenaar,
    Regeling,
    stel_beschikking_op,
    stel_vast,
    toets,
    toets_verlenging,
    verdaging_ongeldig,
)
from grants.domain.zaak import Weigering, Zaak
from grants.messages import (
    BeschikkingOpstellen,
    FinancieelRegistreren,
    Toetsen,
    Vastleggen,
    VaststellingBerekenen,
    VerlengingToetsen,
    Vrijgeven,
)
from grants.repository import GrantsRepository
from grants.volgorde import SERVICE, Reserveringen
from servicekit.commands import Failure, Outcome, apply_command, command_params
from servicekit.envelope import CloudEvent, deterministic_id
from servicekit.kalender import amsterdam_dag
from servicekit.relay import Wake, no_relay
from servicekit.store import Document, DuplicateKeyError
from servicekit.unit_of_work import READ, Current


def iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class GrantsHandlers:
    def __init__(self, repo: GrantsRepository, regelingen: dict[str, Regeling], gemeenten: dict[str, str],
                 wake: Wake = no_relay,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.repo = repo
        #: Business time (the rehearsal clock in test); commands carry the engine's time in ``command.time``.
        self.clock = clock
        self.regelingen = regelingen
        self.gemeenten = gemeenten
        self.wake = wake
        #: ips.budget.reserveren.v1 and intake's volgnummer events; the allocator decides its requests
        self.reserveringen = Reserveringen(repo, regelingen, self.gemeente_naam, wake, clock)

    def gemeente_naam(self, code: str) -> str:
        return self.gemeenten.get(code, code)

    async def _answer(self, command: CloudEvent, aanvraag_id: str, apply: Callable[[Document], Outcome | None],
                      current: Current = READ) -> Document:
        """Apply ``apply`` to the zaak and reply; ``current``: the zaak as the handler just read it (no second
        read on the first attempt; a conflict reads again)."""
        doc = await apply_command(self.repo.zaken, aanvraag_id, command, SERVICE, apply,
                                  create=lambda: {"_id": aanvraag_id, "beschikkingen": []}, current=current)
        self.wake(aanvraag_id, self.repo.zaken.collection, doc)  # as written: the relay need not read it
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

    # --------------------------------------------------------------------------- vastleggen, vrijgeven

    async def vastleggen(self, command: CloudEvent) -> None:
        """ips.budget.vastleggen.v1: UWV confirms; the reservation becomes a commitment (once)."""
        p = command_params(Vastleggen, command)
        outcome: Outcome
        found = await self.reserveringen.reservering(p.aanvraag_id)
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
        found = await self.reserveringen.vrijgeven(p.aanvraag_id, command.time)

        def apply(zaak: Document) -> Outcome:
            if found:
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
        found = await self.reserveringen.reservering(p.aanvraag_id)
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

        await self._answer(command, p.aanvraag_id, apply, current=zaak)

    # ---------------------------------------------------------------------------------------- beschikking

    async def beschikking_opstellen(self, command: CloudEvent) -> None:
        """ips.beschikking.opstellen.v1: take the decision (stored once per command, as data: notifications
        writes and keeps the letter) and list it on the zaak.
        Fails with IPS-MANDAAT-001 when the signatory's sub-mandate does not cover the kind."""
        p = command_params(BeschikkingOpstellen, command)
        regeling = self.regelingen.get(p.regeling)
        gelezen = await self.repo.zaken.get(p.aanvraag_id)
        zaak = gelezen or {}
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

        await self._answer(command, p.aanvraag_id, apply, current=gelezen)

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

