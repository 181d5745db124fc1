"""The application (aanvraag) as intake knows it. Pure and synchronous: no I/O, no pydantic."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

AANVRAAG_INGEDIEND = "ips.aanvraag.ingediend.v1"


@dataclass
class DomainEvent:
    type: str
    data: dict[str, Any]


@dataclass
class Aanvraag:
    id: str
    client_referentie: str
    gemeente_code: str
    traject_type: str
    gewenste_startdatum: date
    ggz_kvk_nummer: str
    ontvangen_op: datetime
    status: str = "ingediend"
    toelichting: str | None = None
    events: list[DomainEvent] = field(default_factory=list)

    @classmethod
    def indienen(cls, *, id: str, client_referentie: str, gemeente_code: str, traject_type: str,
                 gewenste_startdatum: date, ggz_kvk_nummer: str, ontvangen_op: datetime,
                 toelichting: str | None = None) -> Aanvraag:
        """Record a received application; emits ``ips.aanvraag.ingediend.v1`` with ids and facts only."""
        aanvraag = cls(id=id, client_referentie=client_referentie, gemeente_code=gemeente_code,
                       traject_type=traject_type, gewenste_startdatum=gewenste_startdatum,
                       ggz_kvk_nummer=ggz_kvk_nummer, ontvangen_op=ontvangen_op, toelichting=toelichting)
        aanvraag.events.append(DomainEvent(AANVRAAG_INGEDIEND, {
            "aanvraagId": id,
            "gemeenteCode": gemeente_code,
            "trajectType": traject_type,
            "gewensteStartdatum": gewenste_startdatum.isoformat(),
            "ggzKvkNummer": ggz_kvk_nummer,
            "ontvangenOp": ontvangen_op.isoformat(),
        }))
        return aanvraag
