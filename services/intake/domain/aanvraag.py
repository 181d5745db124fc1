"""The aggregate: the application (aanvraag) as intake knows it, and the rules over its state.

Methods called from the portal record domain events (``ips.aanvraag.*``, ``ips.traject.*``); methods called for
engine commands return the command's result instead (the reply is the event).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from intake.domain.begrippen import (
    AANGEVULD,
    AANVRAAG_AANGEVULD,
    AANVRAAG_INGEDIEND,
    AANVRAAG_INGETROKKEN,
    AANVRAAG_VOLGNUMMER_TOEGEKEND,
    AANVULLING_GEVRAAGD,
    BESLUIT_STATUSSEN,
    DOELGROEP_UITKERINGEN,
    DOORGEZONDEN,
    FINAL,
    IN_BEHANDELING,
    INGEDIEND,
    INGETROKKEN,
    ONTBREKEND,
    SOORT_EINDVERSLAG,
    TOEGEKEND,
    TRAJECT_EINDVERSLAG_INGEDIEND,
    TRAJECT_STOPBERICHT,
    TRAJECT_VERLENGING_GEVRAAGD,
    VASTGESTELD,
    VERLENGING_MAANDEN,
    DomainError,
    InvalidValue,
    startdatum_ongeldig,
)
from intake.domain.onderdelen import (
    Besluit,
    DocumentInfo,
    Doelgroep,
    DomainEvent,
    Herstel,
    Modelgetrouwheid,
    Ondertekening,
    Stopbericht,
    Verlengingsverzoek,
    besluit_uit,
)
from servicekit.kalender import amsterdam_dag, termijn_vanaf


@dataclass
class Aanvraag:
    id: str
    client_referentie: str
    gemeente_code: str
    woongemeente_code: str
    traject_type: str
    aanvraagdatum: date
    gewenste_startdatum: date
    ggz_kvk_nummer: str
    ontvangen_op: datetime
    ondertekening: Ondertekening
    doelgroep: Doelgroep
    modelgetrouwheid: Modelgetrouwheid | None = None
    ggz_agb_code: str | None = None
    toelichting: str | None = None
    status: str = INGEDIEND
    documenten: list[DocumentInfo] = field(default_factory=list)
    herstel: Herstel | None = None
    aangevuld_op: datetime | None = None
    volledig_ontvangen_op: datetime | None = None
    #: The place in the order of receipt of complete applications (Awb 4:25), given once when it became complete.
    volgnummer: int | None = None
    doorgezonden_van: str | None = None
    ingetrokken_op: datetime | None = None
    besluit: Besluit | None = None
    vaststelling: Besluit | None = None
    beschikkingen: list[Besluit] = field(default_factory=list)  # every letter registered, in order
    verlengingsverzoeken: list[Verlengingsverzoek] = field(default_factory=list)
    stopbericht: Stopbericht | None = None
    eindverslag_document_id: str | None = None
    eindverslag_ingediend_op: datetime | None = None
    #: intake.stand.Stand, the portal's read model (decision date, trajectory dates), kept beside the aggregate:
    #: the repository reads it, the command handlers change it
    stand: Any = None
    revision: int = 0  # the stored version (optimistic concurrency, the ETag of the portal)
    events: list[DomainEvent] = field(default_factory=list)

    @classmethod
    def indienen(cls, *, id: str, client_referentie: str, gemeente_code: str, woongemeente_code: str,
                 traject_type: str, aanvraagdatum: date, gewenste_startdatum: date, ggz_kvk_nummer: str,
                 ontvangen_op: datetime, ondertekening: Ondertekening, doelgroep: Doelgroep,
                 modelgetrouwheid: Modelgetrouwheid | None = None, ggz_agb_code: str | None = None,
                 toelichting: str | None = None) -> Aanvraag:
        """Record a received application; emits ``ips.aanvraag.ingediend.v1`` with ids and facts only.

        The desired start date must lie within the range of ``startdatum_bereik`` (InvalidValue otherwise).
        """
        ongeldig = startdatum_ongeldig(aanvraagdatum, gewenste_startdatum)
        if ongeldig is not None:
            raise ongeldig
        aanvraag = cls(id=id, client_referentie=client_referentie, gemeente_code=gemeente_code,
                       woongemeente_code=woongemeente_code, traject_type=traject_type, aanvraagdatum=aanvraagdatum,
                       gewenste_startdatum=gewenste_startdatum, ggz_kvk_nummer=ggz_kvk_nummer,
                       ontvangen_op=ontvangen_op, ondertekening=ondertekening, doelgroep=doelgroep,
                       modelgetrouwheid=modelgetrouwheid, ggz_agb_code=ggz_agb_code, toelichting=toelichting)
        aanvraag.events.append(DomainEvent(AANVRAAG_INGEDIEND, {
            "aanvraagId": id,
            "gemeenteCode": gemeente_code,
            "woongemeenteCode": woongemeente_code,
            "trajectType": traject_type,
            "aanvraagdatum": aanvraagdatum.isoformat(),
            "gewensteStartdatum": gewenste_startdatum.isoformat(),
            "ggzKvkNummer": ggz_kvk_nummer,
            "ontvangenOp": ontvangen_op.isoformat(),
        }))
        return aanvraag

    # --- portal actions ---

    def document_toevoegen(self, document: DocumentInfo) -> None:
        if self.status in FINAL:
            raise DomainError(f"De aanvraag is {self.status}; er kunnen geen documenten meer bij.")
        if any(d.id == document.id for d in self.documenten):
            return
        self.documenten.append(document)

    def aanvullen(self, nu: datetime, *, ondertekening: Ondertekening | None = None,
                  modelgetrouwheid: Modelgetrouwheid | None = None, doelgroep: Doelgroep | None = None) -> None:
        """Supplement after a repair request; emits ``ips.aanvraag.aangevuld.v1``.

        Only while asked, and through the end of the repair deadline's day (``herstel.uiterlijk``, an
        Amsterdam calendar date): refused once the Amsterdam date of ``nu`` is after it.
        """
        if self.status != AANVULLING_GEVRAAGD:
            raise DomainError(f"Er is geen aanvulling gevraagd (status {self.status}).")
        if self.herstel is not None and amsterdam_dag(nu) > self.herstel.uiterlijk:
            raise DomainError(f"De hersteltermijn is verstreken (uiterlijk {self.herstel.uiterlijk.isoformat()}); "
                              "aanvullen kan niet meer.")
        if ondertekening is not None:
            self.ondertekening = ondertekening
        if modelgetrouwheid is not None:
            self.modelgetrouwheid = modelgetrouwheid
        if doelgroep is not None:
            self.doelgroep = doelgroep
        self.status = AANGEVULD
        self.aangevuld_op = nu
        self.events.append(DomainEvent(AANVRAAG_AANGEVULD, {"aanvraagId": self.id, "aangevuldOp": nu.isoformat()}))

    def intrekken(self, nu: datetime) -> bool:
        """Withdraw until a decision is registered; emits ``ips.aanvraag.ingetrokken.v1``.

        Returns False (and changes nothing) when it was withdrawn already.
        """
        if self.status == INGETROKKEN:
            return False
        if self.besluit is not None or self.status in BESLUIT_STATUSSEN:
            raise DomainError("Over de aanvraag is al besloten; intrekken kan niet meer.")
        self.status = INGETROKKEN
        self.ingetrokken_op = nu
        data: dict[str, Any] = {"aanvraagId": self.id, "ingetrokkenOp": nu.isoformat()}
        if self.volgnummer is not None:  # grants gives the place back if the reservation was not asked yet
            data["volgnummer"] = self.volgnummer
        self.events.append(DomainEvent(AANVRAAG_INGETROKKEN, data))
        return True

    def mist_volgnummer(self, vereiste_bijlagen: Sequence[str] = ()) -> bool:
        """Whether the application is complete now but has no place in the order of receipt yet: at the
        complete submission, the aanvulling that completes it, or (an upload completed it) the check."""
        return (self.volgnummer is None and self.status in (INGEDIEND, AANGEVULD, DOORGEZONDEN, AANVULLING_GEVRAAGD)
                and not self.ontbrekende_stukken(vereiste_bijlagen))

    def volgnummer_toekennen(self, volgnummer: int) -> None:
        """Fix the place in the order of receipt (once); emits ``ips.aanvraag.volgnummer_toegekend.v1``."""
        if self.volgnummer is not None:
            return
        self.volgnummer = volgnummer
        self.events.append(DomainEvent(AANVRAAG_VOLGNUMMER_TOEGEKEND,
                                       {"aanvraagId": self.id, "volgnummer": volgnummer}))

    # --- the running trajectory (portal actions of the ggz after the grant) ---

    def _traject_loopt(self, wat: str) -> None:
        if self.status != TOEGEKEND:
            raise DomainError(f"{wat} kan alleen bij een toegekende aanvraag (status {self.status}).")

    def verlenging_vragen(self, verzoek: Verlengingsverzoek) -> bool:
        """Ask for an extension; emits ``ips.traject.verlenging_gevraagd.v1`` (ids and months only).

        Only while the trajectory runs (granted, no stopbericht). The regulation's maximum and the single
        extension are the gemeente's decision (grants), so a refusal is a beschikking, not a conflict here.
        Returns False (no change) when this request id was recorded before.
        """
        if any(v.id == verzoek.id for v in self.verlengingsverzoeken):
            return False
        self._traject_loopt("Verlenging vragen")
        if self.stopbericht is not None:
            raise DomainError("Het traject is beëindigd gemeld (stopbericht); verlengen kan niet meer.")
        if verzoek.maanden not in VERLENGING_MAANDEN:
            raise InvalidValue("maanden", "buiten_bereik", "1 tot en met 24")
        self.verlengingsverzoeken.append(verzoek)
        self.events.append(DomainEvent(TRAJECT_VERLENGING_GEVRAAGD, {
            "aanvraagId": self.id, "maanden": verzoek.maanden, "gevraagdOp": verzoek.gevraagd_op.isoformat()}))
        return True

    def stopbericht_melden(self, einddatum: date, nu: datetime) -> None:
        """Stopbericht deel 1 (ggz → gemeente), once; emits ``ips.traject.stopbericht.v1``.

        The status stays ``toegekend``: what follows (deel 2, vaststelling) is the process's to decide.
        ``einddatum`` may not lie before the trajectory's start date (ValueError: invalid input, not a conflict).
        """
        self._traject_loopt("Een stopbericht")
        if self.stopbericht is not None:
            raise DomainError("Er is al een stopbericht gemeld.")
        if einddatum < self.gewenste_startdatum:
            raise InvalidValue("einddatum", "voor_startdatum", "ligt voor de startdatum van het traject")
        self.stopbericht = Stopbericht(einddatum=einddatum, gemeld_op=nu)
        self.events.append(DomainEvent(TRAJECT_STOPBERICHT, {
            "aanvraagId": self.id, "einddatum": einddatum.isoformat(), "gemeldOp": nu.isoformat()}))

    def eindverslag_indienen(self, document: DocumentInfo) -> None:
        """The beëindigingsverslag, once; emits ``ips.traject.eindverslag_ingediend.v1``."""
        self._traject_loopt("Het beëindigingsverslag indienen")
        if self.eindverslag_document_id is not None:
            raise DomainError("Het beëindigingsverslag is al ingediend.")
        if document.soort != SOORT_EINDVERSLAG:
            raise InvalidValue("soort", "literal_error", SOORT_EINDVERSLAG)
        if not any(d.id == document.id for d in self.documenten):
            self.documenten.append(document)
        self.eindverslag_document_id = document.id
        self.eindverslag_ingediend_op = document.ontvangen_op
        self.events.append(DomainEvent(TRAJECT_EINDVERSLAG_INGEDIEND, {
            "aanvraagId": self.id, "documentId": document.id,
            "ingediendOp": document.ontvangen_op.isoformat()}))

    # --- engine commands (each returns the command's result) ---

    def ontbrekende_stukken(self, vereiste_bijlagen: Sequence[str] = ()) -> list[str]:
        missing = []
        if not self.ondertekening.kandidaat:
            missing.append("ondertekening_kandidaat")
        if not self.ondertekening.ggz_instelling:
            missing.append("ondertekening_ggz_instelling")
        if self.modelgetrouwheid is None or self.modelgetrouwheid.geldig_tot is None:
            missing.append("modelgetrouwheidscertificaat")
        for soort in vereiste_bijlagen:
            if not any(d.soort == soort for d in self.documenten):
                missing.append(soort)
        return missing

    def volledigheid_controleren(self, vereiste_bijlagen: Sequence[str] = ()) -> dict[str, Any]:
        """Complete = both signatures, the certificate's expiry date and every required attachment.

        Which uploads are required is configuration (``vereiste_bijlagen``, e.g. the signed application form):
        the portal records the signatures on the submission itself, and the check runs moments after it, so a
        required upload has to be there before the application is submitted or it will be asked for.

        The moment of complete receipt is the receipt itself when complete at once, else the supplement that
        made it complete; it is fixed the first time the application is found complete (order of receipt).
        """
        missing = self.ontbrekende_stukken(vereiste_bijlagen)
        volledig = not missing
        if volledig and self.volledig_ontvangen_op is None:
            self.volledig_ontvangen_op = self.aangevuld_op or self.ontvangen_op
        if volledig and self.status in (INGEDIEND, AANGEVULD, DOORGEZONDEN, AANVULLING_GEVRAAGD):
            self.status = IN_BEHANDELING
        geldig_tot = self.modelgetrouwheid.geldig_tot if self.modelgetrouwheid else None
        return {
            "volledig": volledig,
            "ontbrekend": [{"code": code, "omschrijving": ONTBREKEND.get(code, f"De bijlage '{code}' ontbreekt.")}
                           for code in missing],
            "volledigOntvangenOp": self.volledig_ontvangen_op.isoformat()
            if volledig and self.volledig_ontvangen_op else None,
            "volgnummer": self.volgnummer if volledig else None,
            "criteria": {
                "doelgroep": self.doelgroep.uitkering in DOELGROEP_UITKERINGEN,
                "wilBetaaldWerk": self.doelgroep.wil_betaald_werk,
                "geenAnderTraject": not self.doelgroep.andere_reintegratie,
                "certificaatGeldigTot": geldig_tot.isoformat() if geldig_tot else None,
            },
        }

    def herstel_vragen(self, ontbrekend: list[Any], hersteltermijn: str, nu: datetime) -> dict[str, Any]:
        """Ask for the missing items; the deadline is today (Amsterdam) plus the repair period."""
        gevraagd = amsterdam_dag(nu)
        uiterlijk = termijn_vanaf(gevraagd, hersteltermijn)  # a last day on a weekend or holiday moves (Atw)
        self.herstel = Herstel(ontbrekend=list(ontbrekend), uiterlijk=uiterlijk, gevraagd_op=nu)
        if self.status not in FINAL:
            self.status = AANVULLING_GEVRAAGD
        # gevraagdOp: the day of the request (Awb 4:5); the Awb 4:15 suspension of the decision term counts from it
        return {"uiterlijk": uiterlijk.isoformat(), "gevraagdOp": gevraagd.isoformat()}

    def doorzenden(self, naar_gemeente_code: str, mededeling: dict[str, Any] | None = None,
                   registratie_id: str | None = None) -> dict[str, Any]:
        """Forward to the competent gemeente (Awb 2:3); the original receipt date is kept. The forwarding
        notice is listed with the letters, by reference."""
        van = self.gemeente_code
        if naar_gemeente_code != van:
            self.doorgezonden_van = van
            self.gemeente_code = naar_gemeente_code
        if mededeling is not None:
            self._brief_vastleggen(besluit_uit(mededeling, registratie_id))
        if self.status not in FINAL:
            self.status = DOORGEZONDEN
        return {"gemeenteCode": self.gemeente_code, "doorgezondenVan": self.doorgezonden_van or van}

    def _brief_vastleggen(self, letter: Besluit) -> Besluit:
        """List a letter once (a redelivered or repeated registration finds it); returns the listed one."""
        found = next((b for b in self.beschikkingen if letter.sleutel and b.sleutel == letter.sleutel), None)
        if found is None:
            self.beschikkingen.append(letter)
            return letter
        return found

    def besluit_registreren(self, status: str | None, registratie_id: str,
                            beschikking: dict[str, Any]) -> dict[str, Any]:
        """Record a letter (every one is listed in ``beschikkingen``) by reference: its text and PDF are kept
        once, by notifications, under the beschikking id; intake keeps what it decides.

        ``status`` says what the letter decides: ``toegekend``/``afgewezen``/``niet_behandeld`` decide the
        application, ``vastgesteld`` fixes the final amount (also kept as ``vaststelling``); either becomes
        ``besluit``, the decision the status stands on. None keeps the status and the decision (e.g. an
        extension letter), and so does a ``toegekend`` letter during a granted trajectory. A withdrawn
        application keeps its status, but the letter and the decision are still recorded.
        """
        if status is not None and status not in BESLUIT_STATUSSEN:
            raise DomainError(f"onbekende besluitstatus {status!r}")
        letter = self._brief_vastleggen(besluit_uit(beschikking, registratie_id))
        if status is None:
            return {}
        if status == TOEGEKEND and self.besluit is not None and self.status in (TOEGEKEND, VASTGESTELD):
            return {}  # a later letter of the running trajectory: the grant stays the decision
        if status == VASTGESTELD:
            self.vaststelling = letter
        self.besluit = letter
        if self.status != INGETROKKEN:
            self.status = status
        return {}
