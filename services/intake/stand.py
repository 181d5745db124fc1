"""Where an application stands, as the portal contract shows it (README "Portaalcontract").

Fed by the process engine's commands, never by reading another service's database: the decision date comes with
``ips.aanvraag.volledigheid_controleren.v1`` (grants' beslisdatum, extended after a supplement, Awb 4:15), a 4:14
notice and an extension with the letters ``ips.aanvraag.besluit_registreren.v1`` registers, and the planned
trajectory dates with the registration of the grant. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from intake.domain import Aanvraag

#: Why the decision date is what it is: the statutory term from receipt (Awb 4:13), extended by a suspension
#: after a request to complete (Awb 4:15), or moved by a notice of a new date (Awb 4:14).
BESLISTERMIJN, OPSCHORTING, VERDAGING = "beslistermijn_awb_4_13", "opschorting_awb_4_15", "verdaging_awb_4_14"


def _datum(value: Any) -> date | None:
    return date.fromisoformat(str(value)[:10]) if value else None


@dataclass
class Stand:
    beslisdatum: date | None = None
    beslisdatum_reden: str | None = None
    oorspronkelijke_beslisdatum: date | None = None
    opgeschorte_dagen: int = 0
    startdatum: date | None = None
    einddatum: date | None = None
    verlenging_maanden: int | None = None
    verlenging_beschikking_id: str | None = None

    def beslistermijn(self, beslisdatum: date | None, opgeschorte_dagen: int | None) -> None:
        """The decision date as the engine has it before the assessment (receipt + term, Awb 4:15 applied)."""
        if beslisdatum is None or self.beslisdatum_reden == VERDAGING:
            return
        self.beslisdatum = beslisdatum
        self.opgeschorte_dagen = opgeschorte_dagen or 0
        self.beslisdatum_reden = OPSCHORTING if self.opgeschorte_dagen > 0 else BESLISTERMIJN
        if self.oorspronkelijke_beslisdatum is None:
            self.oorspronkelijke_beslisdatum = beslisdatum

    def brief(self, beschikking: dict[str, Any], startdatum: date | None, einddatum: date | None) -> None:
        """What a registered letter changes: a 4:14 notice the decision date, an extension the end date; the
        grant brings the planned start and end."""
        soort = beschikking.get("soort")
        brief = beschikking.get("brief")
        gegevens: dict[str, Any] = brief if isinstance(brief, dict) else {}
        if soort == "verdaging":
            nieuw = _datum(beschikking.get("nieuweBeslisdatum") or gegevens.get("nieuweBeslisdatum"))
            if nieuw is not None:
                self.oorspronkelijke_beslisdatum = self.oorspronkelijke_beslisdatum or self.beslisdatum
                self.beslisdatum, self.beslisdatum_reden = nieuw, VERDAGING
        elif soort == "verlenging":
            nieuw = _datum(beschikking.get("nieuweEinddatum") or gegevens.get("nieuweEinddatum"))
            if nieuw is not None:
                self.einddatum = nieuw
                maanden = beschikking.get("maanden", gegevens.get("maanden"))
                self.verlenging_maanden = maanden if isinstance(maanden, int) else None
                self.verlenging_beschikking_id = beschikking.get("beschikkingId")
        if startdatum is not None:
            self.startdatum = startdatum
        if einddatum is not None and self.verlenging_beschikking_id is None:
            self.einddatum = einddatum

    def te_laat(self, vandaag: date, besloten_op: date | None) -> bool:
        """Overdue (Awb 4:13): the decision date passed without a decision, or the decision came after it. The
        same day as the engine's timer, which fires at the end of the decision date (Europe/Amsterdam)."""
        if self.beslisdatum is None:
            return False
        return (besloten_op if besloten_op is not None else vandaag) > self.beslisdatum

    def to_doc(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None) -> Stand:
        if not doc:
            return cls()
        datums = ("beslisdatum", "oorspronkelijke_beslisdatum", "startdatum", "einddatum")
        velden: dict[str, Any] = {k: (_datum(v) if k in datums else v) for k, v in doc.items()
                                  if k in cls.__dataclass_fields__}
        return cls(**velden)


def stand(a: Aanvraag) -> Stand:
    """The portal's read model of the application, kept beside it (``Aanvraag.stand``)."""
    if not isinstance(a.stand, Stand):
        a.stand = Stand()
    return a.stand


def ontvangstbevestiging(a: Aanvraag) -> dict[str, Any]:
    """The answer to a submission (``AanvraagOntvangen``, camelCase, JSON types): kept with the application, so
    that a replay of the same POST gets exactly this answer again."""
    return {"id": a.id, "status": a.status, "ontvangenOp": a.ontvangen_op.isoformat(),
            "gemeenteCode": a.gemeente_code, "woongemeenteCode": a.woongemeente_code, "trajectType": a.traject_type}
