"""Notifications domain: who gets a decision letter, what the e-mail and the letter say, when to try again.

Pure and synchronous (standard library only). The words are Jinja2 templates (``sjablonen.py``,
``templates/``); the PDF rendering and SMTP live at the edges (``letter.py``, ``mailer.py``); this module
decides what goes into a letter, the addresses and the retry schedule.

Privacy: a message carries the decision as grants wrote it, addressed to organisations. Nothing here adds
personal data; the handler refuses to send a text that looks like it holds a BSN
(``servicekit.personal_data.holds_bsn_like_number``, the one BSN check every service uses).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from servicekit.kalender import bedrag, datum_nl  # the one Dutch notation of amounts and dates

TEMPLATES_DIR = Path(__file__).with_name("templates")
DATA_DIR = Path(__file__).with_name("data")

# Status of a message in the delivery log.
TE_VERSTUREN = "te_versturen"  # waiting for (the next) attempt at volgende_poging
BEZIG = "bezig"                # claimed by a sender until lease_tot
VERZONDEN = "verzonden"        # the SMTP server accepted it
MISLUKT = "mislukt"            # permanently refused or out of attempts; beheer can retry
GEEN_ADRES = "geen_adres"      # a recipient has no configured contact: parked, never guessed
GEBLOKKEERD = "geblokkeerd"    # the text looks like it holds a BSN: never sent
STATUSSEN = (TE_VERSTUREN, BEZIG, VERZONDEN, MISLUKT, GEEN_ADRES, GEBLOKKEERD)

SOORTEN = ("toekenning", "afwijzing", "niet_behandelen", "doorzending", "verdaging", "verlenging", "vaststelling")

ONDERWERPEN = {
    "toekenning": "Besluit op uw aanvraag subsidie IPS-traject: toekenning",
    "afwijzing": "Besluit op uw aanvraag subsidie IPS-traject: afwijzing",
    "niet_behandelen": "Besluit op uw aanvraag subsidie IPS-traject: niet in behandeling genomen",
    "doorzending": "Doorzending van uw aanvraag subsidie IPS-traject",
    "verdaging": "Verdaging van de beslissing op uw aanvraag subsidie IPS-traject",
    "verlenging": "Besluit op uw verzoek om verlenging van het IPS-traject",
    "vaststelling": "Vaststelling subsidie IPS-traject",
}
ALGEMEEN_ONDERWERP = "Besluit over uw IPS-traject"

# Lines of grants' letter text that the letter template shows in its own header.
_KOPREGELS = ("Aan:", "Datum:", "Ons kenmerk:", "Uw aanvraag:", "Onderwerp:")
_TUSSENKOPPEN = ("Motivering", "Bezwaar")


# --------------------------------------------------------------------------------------------- formatting


def _as_date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


# ------------------------------------------------------------------------------------------------ contacts


@dataclass(frozen=True)
class Contact:
    naam: str
    email: str


@dataclass(frozen=True)
class Contacten:
    """Configured contacts: ggz-instellingen by KvK number, gemeenten by CBS code; plus gemeente names."""

    ggz: Mapping[str, Contact]
    gemeenten: Mapping[str, Contact]
    gemeentenamen: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], gemeentenamen: Mapping[str, str] | None = None) -> Contacten:
        def read(section: str) -> dict[str, Contact]:
            found: dict[str, Contact] = {}
            for key, value in (raw.get(section) or {}).items():
                email = str(value.get("email") or "").strip()
                if "@" not in email:
                    continue  # an entry without a usable address counts as missing, never as a guess
                found[str(key)] = Contact(naam=str(value.get("naam") or ""), email=email)
            return found

        return cls(ggz=read("ggz"), gemeenten=read("gemeenten"), gemeentenamen=dict(gemeentenamen or {}))

    @classmethod
    def load(cls, path: Path, gemeenten_csv: Path | None = None) -> Contacten:
        names: dict[str, str] = {}
        if gemeenten_csv is not None and gemeenten_csv.is_file():
            import csv

            with gemeenten_csv.open(encoding="utf-8", newline="") as fh:
                names = {row["code"]: row["name"] for row in csv.DictReader(fh)}
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")), names)

    def gemeente_naam(self, code: str) -> str:
        """The gemeente's own name ('Roermond'); the CBS code only when it is unknown."""
        return self.gemeentenamen.get(code, code)


@dataclass(frozen=True)
class Ontvangers:
    aan: tuple[Contact, ...]
    cc: tuple[Contact, ...]
    ontbrekend: tuple[str, ...]  # e.g. "ggz:12345678", "gemeente:0957"

    @property
    def compleet(self) -> bool:
        return not self.ontbrekend and bool(self.aan)


def bepaal_ontvangers(contacten: Contacten, ggz_kvk_nummer: str | None, gemeente_code: str,
                      meer_cc: Sequence[str] = ()) -> Ontvangers:
    """To the ggz-instelling that applied, CC the gemeente (and ``meer_cc``: the other gemeente of a forwarding
    notice). Anyone missing is named in ``ontbrekend``."""
    ontbrekend: list[str] = []
    ggz = contacten.ggz.get(ggz_kvk_nummer or "")
    if ggz is None:
        ontbrekend.append(f"ggz:{ggz_kvk_nummer or 'onbekend'}")
    cc: list[Contact] = []
    for code in dict.fromkeys([gemeente_code, *meer_cc]):
        gemeente = contacten.gemeenten.get(code)
        if gemeente is None:
            ontbrekend.append(f"gemeente:{code}")
        else:
            cc.append(gemeente)
    return Ontvangers(aan=(ggz,) if ggz else (), cc=tuple(cc), ontbrekend=tuple(ontbrekend))


# ---------------------------------------------------------------------------------------------- templates


def bericht_id(beschikking_id: str) -> str:
    """One message per beschikking: the id is derived from the beschikking id, so a repeat finds it."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ipsflow:bericht:{beschikking_id}"))


def message_id_header(beschikking_id: str, domain: str) -> str:
    """RFC 5322 Message-ID derived from the beschikking, so a receiving side can drop a resend."""
    return f"<beschikking-{beschikking_id}@{domain}>"


@dataclass(frozen=True)
class Brief:
    """What the letter and the e-mail are made from (taken from grants' beschikking)."""

    beschikking_id: str
    aanvraag_id: str
    kenmerk: str
    soort: str
    datum: date
    gemeente_code: str
    gemeente_naam: str
    ggz_naam: str
    bedrag_cents: int
    bezwaartermijn_einde: date | None
    mandaat: str
    tekst: str  # the text of a beschikking from an older grants, which sent words instead of data
    financiering: Mapping[str, Any] | None = None
    gegevens: Mapping[str, Any] | None = None  # grants' decision as data (grants.domain.briefgegevens)

    @property
    def onderwerp(self) -> str:
        return ONDERWERPEN.get(self.soort, ALGEMEEN_ONDERWERP)

    @classmethod
    def uit_beschikking(cls, beschikking: Mapping[str, Any], aanvraag_id: str, gemeente_code: str,
                        contacten: Contacten, ggz_kvk_nummer: str | None) -> Brief:
        ggz = contacten.ggz.get(ggz_kvk_nummer or "")
        ggz_naam = ggz.naam if ggz else (f"de ggz-instelling met KvK-nummer {ggz_kvk_nummer}" if ggz_kvk_nummer
                                         else "de ggz-instelling")
        datum = _as_date(beschikking.get("datum"))
        return cls(
            beschikking_id=str(beschikking["beschikkingId"]), aanvraag_id=aanvraag_id,
            kenmerk=str(beschikking["kenmerk"]), soort=str(beschikking["soort"]),
            datum=datum or date.today(), gemeente_code=gemeente_code,
            gemeente_naam=contacten.gemeente_naam(gemeente_code), ggz_naam=ggz_naam,
            bedrag_cents=int(beschikking.get("bedragCents") or 0),
            bezwaartermijn_einde=_as_date(beschikking.get("bezwaartermijnEinde")),
            mandaat=str(beschikking.get("mandaat") or ""), tekst=str(beschikking.get("tekst") or ""),
            financiering=beschikking.get("financiering") or None, gegevens=beschikking.get("brief") or None)

    def velden(self) -> dict[str, str]:
        """Template fields (plain text; the HTML renderer escapes them)."""
        return {
            "kenmerk": self.kenmerk, "aanvraag_id": self.aanvraag_id, "soort": self.soort,
            "onderwerp": self.onderwerp, "datum": datum_nl(self.datum), "gemeente_naam": self.gemeente_naam,
            "ggz_naam": self.ggz_naam, "bedrag": bedrag(self.bedrag_cents),
            "bezwaartermijn_einde": datum_nl(self.bezwaartermijn_einde) if self.bezwaartermijn_einde else "",
            "bestandsnaam": self.bestandsnaam,
        }

    @property
    def bestandsnaam(self) -> str:
        return f"{re.sub(r'[^A-Za-z0-9_-]', '_', self.kenmerk)}.pdf"


def alineas(tekst: str) -> list[tuple[str, str]]:
    """The letter body as (kind, text): 'kop' for a heading, 'p' for a paragraph, 'li' for a list item.

    The beschikking's text is kept word for word, except the header lines that the letter shows in its own
    table.
    """
    blokken: list[tuple[str, str]] = []
    alinea: list[str] = []

    def sluit() -> None:
        if alinea:
            blokken.append(("p", " ".join(alinea)))
            alinea.clear()

    for regel in tekst.splitlines():
        schoon = regel.strip()
        if regel.startswith(_KOPREGELS):
            continue
        if not schoon:
            sluit()
        elif schoon in _TUSSENKOPPEN:
            sluit()
            blokken.append(("kop", schoon))
        elif schoon.startswith("- "):
            sluit()
            blokken.append(("li", schoon[2:]))
        else:
            alinea.append(schoon)
    sluit()
    return blokken


# ------------------------------------------------------------------------------------------------- retries


@dataclass(frozen=True)
class Herhaalschema:
    """When to try again after a failed attempt: ``wachttijden`` in seconds, the last one repeating,
    until ``max_pogingen`` attempts were made."""

    wachttijden: Sequence[float]
    max_pogingen: int

    def volgende(self, pogingen: int, nu: datetime) -> datetime | None:
        """The moment of the next attempt after ``pogingen`` failed ones; None when there is none left."""
        if pogingen >= self.max_pogingen or not self.wachttijden:
            return None
        wacht = self.wachttijden[min(pogingen, len(self.wachttijden)) - 1] if pogingen > 0 else 0.0
        return nu + timedelta(seconds=wacht)


def is_permanente_fout(smtp_code: int | None) -> bool:
    """A 5xx reply (e.g. 550 mailbox unknown) will not change by trying again; anything else may."""
    return smtp_code is not None and 500 <= smtp_code < 600
