"""Reports for gemeenten and UWV: per gemeente and budget period the applications, decisions, refusals by
ground and the money (reserved, committed, paid, recovered, vastgesteld) against the period's ceiling.

Pure and synchronous: it takes the documents as read (zaken, reserveringsverzoeken, ledgers) and sums in
Python; the number of cases per year is small, and FerretDB v1 could not join them anyway.

Where the numbers come from:

* counts from the zaken: every zaak grants saw is an application; grants, refusals (with their grounds),
  decisions not to handle and extensions from the beschikkingen listed on the zaak. A zaak belongs to the
  gemeente and budget period of its reservation request, or else to the gemeente it was addressed to and
  the period of its application date.
* money from the ledger's own entries per aanvraag (``reserveringen.<id>`` and ``financieel.<id>``), so the
  sum over gemeenten of a period is by construction what the ledger's entries hold; the test that compares
  it with the ledger's running totals checks that those totals were kept right.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from grants.domain import Regeling
from servicekit.kalender import euro_decimaal

BEDRAGEN = ("gereserveerd_cents", "vastgelegd_cents", "betaald_cents", "teruggevorderd_cents", "vastgesteld_cents")


@dataclass
class Rij:
    gemeente_code: str
    gemeente_naam: str
    regeling: str
    budgetperiode: str
    plafond_cents: int
    beschikbaar_cents: int
    aanvragen: int = 0
    toekenningen: int = 0
    afwijzingen: int = 0
    weigeringsgronden: dict[str, int] = field(default_factory=dict)
    niet_behandeld: int = 0
    verlengingen: int = 0
    gereserveerd_cents: int = 0
    vastgelegd_cents: int = 0
    betaald_cents: int = 0
    teruggevorderd_cents: int = 0
    vastgesteld_cents: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "gemeenteCode": self.gemeente_code, "gemeenteNaam": self.gemeente_naam, "regeling": self.regeling,
            "budgetperiode": self.budgetperiode, "aanvragen": self.aanvragen, "toekenningen": self.toekenningen,
            "afwijzingen": self.afwijzingen, "weigeringsgronden": dict(sorted(self.weigeringsgronden.items())),
            "nietBehandeld": self.niet_behandeld, "verlengingen": self.verlengingen,
            "gereserveerdCents": self.gereserveerd_cents, "vastgelegdCents": self.vastgelegd_cents,
            "betaaldCents": self.betaald_cents, "teruggevorderdCents": self.teruggevorderd_cents,
            "vastgesteldCents": self.vastgesteld_cents, "plafondCents": self.plafond_cents,
            "beschikbaarCents": self.beschikbaar_cents,
        }


def perioden_in_jaar(regelingen: Iterable[Regeling], jaar: int) -> list[tuple[str, str]]:
    """(regeling, budget period) of every budget period that overlaps the calendar year."""
    begin, eind = date(jaar, 1, 1), date(jaar, 12, 31)
    return [(r.id, p.id) for r in regelingen for p in r.budgetperioden
            if p.periode.van <= eind and p.periode.tot >= begin]


def _periode_van_zaak(zaak: Mapping[str, Any], verzoek: Mapping[str, Any] | None,
                      regelingen: Mapping[str, Regeling]) -> tuple[str, str, str] | None:
    if verzoek is not None and verzoek.get("budgetperiode"):
        return verzoek["regeling"], verzoek["budgetperiode"], verzoek["gemeente_code"]
    regeling = regelingen.get(zaak.get("regeling") or "")
    if regeling is None or not zaak.get("gemeente_code") or not zaak.get("aanvraagdatum"):
        return None
    return regeling.id, regeling.budgetperiode(date.fromisoformat(zaak["aanvraagdatum"])).id, zaak["gemeente_code"]


def bereken(jaar: int, regelingen: Mapping[str, Regeling], gemeenten: Mapping[str, str],
            zaken: Iterable[Mapping[str, Any]], verzoeken: Iterable[Mapping[str, Any]],
            ledgers: Iterable[Mapping[str, Any]], gemeente: str | None = None) -> list[Rij]:
    """The report rows for ``jaar`` (only ``gemeente``'s when given), sorted by gemeente and period."""
    in_jaar = set(perioden_in_jaar(regelingen.values(), jaar))
    per_ledger = {(d["regeling"], d["periode"]): d for d in ledgers}
    per_verzoek = {v["_id"]: v for v in verzoeken}
    zaken = list(zaken)
    gemeente_van = {z["_id"]: z.get("gemeente_code") for z in zaken}
    gemeente_van.update({aid: v["gemeente_code"] for aid, v in per_verzoek.items()})
    rijen: dict[tuple[str, str, str], Rij] = {}

    def rij(regeling: str, periode: str, code: str) -> Rij | None:
        if (regeling, periode) not in in_jaar or (gemeente is not None and code != gemeente):
            return None
        key = (code, regeling, periode)
        if key not in rijen:
            ledger = per_ledger.get((regeling, periode))
            plafond = next(p.plafond_cents for p in regelingen[regeling].budgetperioden if p.id == periode)
            rijen[key] = Rij(code, gemeenten.get(code, code), regeling, periode,
                             plafond_cents=ledger["plafond_cents"] if ledger else plafond,
                             beschikbaar_cents=ledger["beschikbaar_cents"] if ledger else plafond)
        return rijen[key]

    for zaak in zaken:
        verzoek = per_verzoek.get(zaak["_id"])
        plek = _periode_van_zaak(zaak, verzoek, regelingen)
        r = rij(*plek) if plek is not None else None
        if r is None:
            continue
        r.aanvragen += 1
        soorten = {b.get("soort"): b for b in zaak.get("beschikkingen") or []}
        if "toekenning" in soorten:
            r.toekenningen += 1
        if "afwijzing" in soorten:
            r.afwijzingen += 1
            codes = soorten["afwijzing"].get("gronden") or [
                g["code"] for g in ((verzoek or {}).get("uitkomst") or {}).get("weigeringsgronden") or []]
            for code in codes:
                r.weigeringsgronden[code] = r.weigeringsgronden.get(code, 0) + 1
        if "niet_behandelen" in soorten:
            r.niet_behandeld += 1
        if "verlenging" in soorten:
            r.verlengingen += 1

    for (regeling, periode), ledger in per_ledger.items():
        if regeling not in regelingen:
            continue
        for aid, entry in (ledger.get("reserveringen") or {}).items():
            r = rij(regeling, periode, gemeente_van.get(aid) or "onbekend")
            if r is None:
                continue
            if entry.get("status") == "vastgelegd":
                r.vastgelegd_cents += int(entry["bedragCents"])
            else:
                r.gereserveerd_cents += int(entry["bedragCents"])
        for aid, entry in (ledger.get("financieel") or {}).items():
            r = rij(regeling, periode, gemeente_van.get(aid) or "onbekend")
            if r is None:
                continue
            r.betaald_cents += int(entry.get("betaald_cents") or 0)
            r.teruggevorderd_cents += int(entry.get("teruggevorderd_cents") or 0)
            r.vastgesteld_cents += int(entry.get("vastgesteld_cents") or 0)

    return [rijen[k] for k in sorted(rijen)]


def totalen(rijen: Sequence[Rij]) -> list[dict[str, Any]]:
    """Per regulation and budget period: the sums of the rows (and the period's ceiling and available)."""
    sums: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rijen:
        t = sums.setdefault((r.regeling, r.budgetperiode), {
            "regeling": r.regeling, "budgetperiode": r.budgetperiode, "plafondCents": r.plafond_cents,
            "beschikbaarCents": r.beschikbaar_cents, "aanvragen": 0, "toekenningen": 0, "afwijzingen": 0,
            "gereserveerdCents": 0, "vastgelegdCents": 0, "betaaldCents": 0, "teruggevorderdCents": 0,
            "vastgesteldCents": 0})
        j = r.as_json()
        for key in ("aanvragen", "toekenningen", "afwijzingen", "gereserveerdCents", "vastgelegdCents",
                    "betaaldCents", "teruggevorderdCents", "vastgesteldCents"):
            t[key] += j[key]
    return [sums[k] for k in sorted(sums)]


#: Euros with a decimal comma and no thousands separator (Excel nl reads it as a number): 1887,50.
euro = euro_decimaal


KOLOMMEN = ("Gemeentecode", "Gemeente", "Regeling", "Budgetperiode", "Aanvragen", "Toekenningen", "Afwijzingen",
            "Niet in behandeling genomen", "Verlengingen", "Gereserveerd (EUR)", "Vastgelegd (EUR)",
            "Betaald (EUR)", "Teruggevorderd (EUR)", "Vastgesteld (EUR)", "Subsidieplafond (EUR)",
            "Beschikbaar (EUR)")


def als_csv(rijen: Sequence[Rij]) -> str:
    """Semicolon-separated, Dutch headers, amounts in euros with a decimal comma, a column per ground of
    refusal; starts with a byte order mark so that Excel reads it as UTF-8."""
    codes = sorted({code for r in rijen for code in r.weigeringsgronden})
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow([*KOLOMMEN, *(f"Afgewezen: {code}" for code in codes)])
    for r in rijen:
        writer.writerow([
            r.gemeente_code, r.gemeente_naam, r.regeling, r.budgetperiode, r.aanvragen, r.toekenningen,
            r.afwijzingen, r.niet_behandeld, r.verlengingen, euro(r.gereserveerd_cents), euro(r.vastgelegd_cents),
            euro(r.betaald_cents), euro(r.teruggevorderd_cents), euro(r.vastgesteld_cents), euro(r.plafond_cents),
            euro(r.beschikbaar_cents), *(r.weigeringsgronden.get(code, 0) for code in codes)])
    return "\ufeff" + out.getvalue()
