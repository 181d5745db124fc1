"""The aggregate of grants: its record of one application (a document of the ``zaken`` collection).

The handlers load it, call one method and save it (``servicekit.commands.apply_command``: revision-checked, with
the outbox and the applied command ids); the rules about what may follow what live here, not in the handlers:
an extension is granted once, a beschikking takes from the zaak what its command leaves out (the trajectory type,
the granted amount, the outcome of the extension check and of the vaststelling, what was paid), and every
beschikking taken is listed on the zaak in order. The state stays the stored document (its field names are the
stored ones), so a zaak written by an older grants reads the same.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from grants.domain.regeling import Regeling
from grants.domain.traject import Vaststelling, Verlengingstoets

#: The kinds of beschikking that take the outcome of the extension check from the zaak.
MET_VERLENGINGSTOETS = frozenset({"verlenging", "afwijzing_verlenging"})


@dataclass(frozen=True)
class Weigering:
    """A rule of the zaak that a command breaks: the code and the Dutch message the engine records."""

    code: str
    melding: str


@dataclass(frozen=True)
class Beschikkingsgegevens:
    """What a beschikking states where its command left it out, taken from the zaak."""

    traject_type: str
    bedrag_cents: int
    nieuwe_einddatum: date | None
    maanden: int | None
    vastgesteld_cents: int | None
    betaald_cents: int | None
    ggz_kvk_nummer: str | None


class Zaak:
    """One application as grants knows it. ``doc`` is the stored document, changed in place."""

    def __init__(self, doc: MutableMapping[str, Any]) -> None:
        self.doc = doc

    def _deel(self, naam: str) -> Mapping[str, Any]:
        deel = self.doc.get(naam)
        return deel if isinstance(deel, Mapping) else {}

    @property
    def verlengingen(self) -> int:
        """How many extensions were granted on this zaak."""
        return int(self.doc.get("verlengingen") or 0)

    # ----------------------------------------------------------------------------------------- verlenging

    def leg_verlengingstoets_vast(self, toets: Verlengingstoets, maanden: int, einddatum: date,
                                  op: str) -> dict[str, object]:
        """Record the outcome of an extension check (``op``: when, ISO 8601); returns it as the engine gets it."""
        result: dict[str, object] = {
            "toegestaan": toets.toegestaan, "weigeringsgronden": [g.as_dict() for g in toets.weigeringsgronden],
            "nieuweEinddatum": toets.nieuwe_einddatum.isoformat() if toets.nieuwe_einddatum else None,
            "maanden": maanden, "einddatum": einddatum.isoformat()}
        self.doc["verlengingstoets"] = {**result, "op": op}
        return result

    def verlenging_weigering(self, beschikking_id: str, nieuwe_einddatum: object) -> Weigering | None:
        """An extension is granted once: a second verlenging beschikking (another command) is refused, even when
        the engine's count says otherwise; and it needs the new end date."""
        eerdere = self._deel("verlenging")
        if eerdere and eerdere.get("beschikkingId") != beschikking_id:
            return Weigering("IPS-VERLENGING-001", "Het traject is al eerder verlengd; het kan maar eenmaal worden "
                                                   "verlengd.")
        if nieuwe_einddatum is None:
            return Weigering("IPS-VERLENGING-002", "Een verlenging vraagt de nieuwe einddatum.")
        return None

    # --------------------------------------------------------------------------------------- vaststelling

    def leg_vaststelling_vast(self, vaststelling: Vaststelling, verleend_cents: int, startdatum: date,
                              einddatum: date, op: str) -> dict[str, object]:
        """Record the final amount; returns the outcome as the engine gets it."""
        result: dict[str, object] = {
            "vastgesteldCents": vaststelling.vastgesteld_cents, "regel": vaststelling.regel,
            "maanden": vaststelling.maanden, "toelichting": vaststelling.toelichting, "verleendCents": verleend_cents}
        self.doc["vaststelling"] = {**result, "startdatum": startdatum.isoformat(),
                                    "werkelijkeEinddatum": einddatum.isoformat(), "op": op}
        return result

    # ---------------------------------------------------------------------------------------- beschikking

    def beschikkingsgegevens(self, soort: str, regeling: Regeling, *, traject_type: str | None,
                             bedrag_cents: int | None, nieuwe_einddatum: date | None, maanden: int | None,
                             vastgesteld_cents: int | None, ggz_kvk_nummer: str | None) -> Beschikkingsgegevens:
        """The command's values, completed from the zaak: the type it was assessed for, the amount reserved (else
        the tariff), the new end date and months of a granted extension check, the vaststelling's amount."""
        type_ = traject_type or self.doc.get("traject_type") or regeling.trajecttypen[0]
        verleend = self._deel("vergoeding").get("bedragCents") or regeling.tarief(type_) or 0
        toets = self._deel("verlengingstoets") if soort in MET_VERLENGINGSTOETS else {}
        if nieuwe_einddatum is None and soort == "verlenging" and toets.get("nieuweEinddatum"):
            nieuwe_einddatum = date.fromisoformat(toets["nieuweEinddatum"])
        if maanden is None:
            maanden = toets.get("maanden")
        if vastgesteld_cents is None and soort == "vaststelling":
            vastgesteld_cents = self._deel("vaststelling").get("vastgesteldCents")
        return Beschikkingsgegevens(
            traject_type=type_, bedrag_cents=bedrag_cents if bedrag_cents is not None else verleend,
            nieuwe_einddatum=nieuwe_einddatum, maanden=maanden, vastgesteld_cents=vastgesteld_cents,
            betaald_cents=self._deel("financieel").get("betaald_cents"),
            ggz_kvk_nummer=ggz_kvk_nummer or self.doc.get("ggz_kvk_nummer"))

    def registreer_beschikking(self, beschikking: Mapping[str, Any]) -> Weigering | None:
        """List a stored beschikking on the zaak; a verlenging also counts as the (one) extension. Refused, and
        nothing changed, when it would be a second extension."""
        if beschikking["soort"] == "verlenging":
            weigering = self.verlenging_weigering(beschikking["_id"], beschikking.get("nieuwe_einddatum"))
            if weigering is not None:
                return weigering
            self.doc["verlengingen"] = self.verlengingen + 1
            self.doc["verlenging"] = {"beschikkingId": beschikking["_id"], "maanden": beschikking["maanden"],
                                      "nieuweEinddatum": beschikking["nieuwe_einddatum"], "datum": beschikking["datum"]}
        self.doc["beschikkingen"] = [
            *(self.doc.get("beschikkingen") or []),
            {"id": beschikking["_id"], "kenmerk": beschikking["kenmerk"], "soort": beschikking["soort"],
             "datum": beschikking["datum"], "bedrag_cents": beschikking["bedrag_cents"],
             "gronden": [g["code"] for g in beschikking.get("gronden") or []]}]
        return None
