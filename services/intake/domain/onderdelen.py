"""The parts of an application: signatures, certificate, target group, documents, the repair request, the
letters intake keeps (by reference, never their text), extension requests and the stopbericht."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


@dataclass
class DomainEvent:
    type: str
    data: dict[str, Any]


@dataclass
class Ondertekening:
    kandidaat: bool = False
    ggz_instelling: bool = False


@dataclass
class Modelgetrouwheid:
    certificaatnummer: str | None = None
    geldig_tot: date | None = None


@dataclass
class Doelgroep:
    uitkering: str
    wil_betaald_werk: bool
    andere_reintegratie: bool


@dataclass
class DocumentInfo:
    """Metadata of a document of the application; the content lives in the ``documenten`` collection."""

    id: str
    soort: str
    bestandsnaam: str
    content_type: str
    grootte: int
    sha256: str
    ontvangen_op: datetime


@dataclass
class Herstel:
    ontbrekend: list[Any]
    uiterlijk: date
    gevraagd_op: datetime


@dataclass
class Besluit:
    soort: str | None
    datum: str | None
    bezwaartermijn_einde: str | None
    bedrag_cents: int | None
    # A letter registered before letters were kept once (by notifications) was stored here as a document.
    document_id: str | None = None
    beschikking_id: str | None = None  # the letter (text and PDF): notifications GET /api/v1/brieven/{id}
    kenmerk: str | None = None
    registratie_id: str | None = None  # fixed by the command that registered it: the same letter is listed once
    gronden: list[dict[str, str]] = field(default_factory=list)  # grounds of a refusal: code and text

    @property
    def sleutel(self) -> str | None:
        return self.registratie_id or self.document_id


@dataclass
class Verlengingsverzoek:
    """A request of the ggz to extend the running trajectory; the gemeente decides (a beschikking)."""

    id: str
    maanden: int
    gevraagd_op: datetime
    toelichting: str | None = None


@dataclass
class Stopbericht:
    """Stopbericht deel 1: the ggz reports the trajectory ended early, on ``einddatum``."""

    einddatum: date
    gemeld_op: datetime


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def besluit_uit(beschikking: dict[str, Any], registratie_id: str | None) -> Besluit:
    """What intake keeps of a letter: what it decides and its beschikking id (never its text)."""
    bedrag = beschikking.get("bedragCents")
    return Besluit(
        soort=_str_or_none(beschikking.get("soort")),
        datum=_str_or_none(beschikking.get("datum")),
        bezwaartermijn_einde=_str_or_none(beschikking.get("bezwaartermijnEinde")),
        bedrag_cents=bedrag if isinstance(bedrag, int) and not isinstance(bedrag, bool) else None,
        beschikking_id=_str_or_none(beschikking.get("beschikkingId")),
        kenmerk=_str_or_none(beschikking.get("kenmerk")),
        registratie_id=registratie_id,
        gronden=[{"code": str(g.get("code", "")), "tekst": str(g.get("tekst", ""))}
                 for g in beschikking.get("gronden") or [] if isinstance(g, dict)],
    )
