"""The trajectory after the grant: one extension (end-of-month aware) and the vaststelling of the final amount
under the regulation's rule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from grants.domain.regeling import Regeling
from grants.domain.toetsing import Grond
from servicekit.kalender import bedrag, datum_nl, einde_periode, laatste_dag


def _maanden_verder(dag: date, maanden: int) -> tuple[int, int]:
    total = dag.year * 12 + dag.month - 1 + maanden
    return total // 12, total % 12 + 1


#: The last day of a trajectory of ``maanden`` months from ``start`` (servicekit.kalender.einde_periode).
geplande_einddatum = einde_periode


def verlengde_einddatum(einde: date, maanden: int) -> date:
    """A planned end date moved by ``maanden`` months, end-of-month aware: a period ending on the last day of
    a month ends on the last day of the month ``maanden`` later (2026-01-31 + 12 -> 2027-01-31; 2026-04-30 + 1
    -> 2026-05-31; 2027-02-28 + 12 -> 2028-02-29); otherwise on the same day, or that month's last day."""
    year, month = _maanden_verder(einde, maanden)
    laatste = laatste_dag(year, month)
    if einde.day == laatste_dag(einde.year, einde.month):
        return date(year, month, laatste)
    return date(year, month, min(einde.day, laatste))


@dataclass(frozen=True)
class Verlengingstoets:
    toegestaan: bool
    weigeringsgronden: tuple[Grond, ...]
    nieuwe_einddatum: date | None


def toets_verlenging(regeling: Regeling, maanden: int, einddatum: date, eerdere_verlengingen: int) -> Verlengingstoets:
    """One extension of at most the regulation's ``verlenging_max_maanden`` months; the new end date when
    it may be granted (the gemeente still decides)."""
    gronden: list[Grond] = []
    maximum = regeling.verlenging_max_maanden
    if maanden < 1 or maanden > maximum:
        gronden.append(Grond("verlenging_te_lang" if maanden > maximum else "verlenging_ongeldig", (
            f"U vraagt een verlenging van {maanden} maanden. Op grond van de {regeling.citeertitel} kan een "
            f"traject met ten hoogste {maximum} maanden worden verlengd.")))
    if eerdere_verlengingen > 0:
        gronden.append(Grond("al_verlengd", (
            f"Het traject is al eerder verlengd. Op grond van de {regeling.citeertitel} kan een traject maar "
            "eenmaal worden verlengd.")))
    if gronden:
        return Verlengingstoets(False, tuple(gronden), None)
    return Verlengingstoets(True, (), verlengde_einddatum(einddatum, maanden))


VASTSTELLINGSREGELS = ("full", "pro_rata_months")


@dataclass(frozen=True)
class Vaststelling:
    vastgesteld_cents: int
    regel: str
    maanden: int
    toelichting: str


def gelopen_maanden(start: date, einde: date) -> int:
    """The calendar months in which the trajectory ran: from the month of ``start`` up to and including the
    month of ``einde`` (0 when it ended before it started)."""
    if einde < start:
        return 0
    return (einde.year - start.year) * 12 + einde.month - start.month + 1


def deel_half_naar_boven(teller: int, noemer: int) -> int:
    """teller / noemer rounded to whole cents, a half rounded up (non-negative numbers)."""
    quotient, rest = divmod(teller, noemer)
    return quotient + (1 if 2 * rest >= noemer else 0)


def stel_vast(regel: str, verleend_cents: int, startdatum: date, geplande_einde: date,
              werkelijke_einde: date | None, looptijd_maanden: int) -> Vaststelling:
    """The final amount under the regulation's rule.

    ``full``: the granted amount. ``pro_rata_months``: granted * months run / looptijd_maanden, where months
    run are the calendar months from the start month up to and including the month it ended (the planned end
    when it ran its course), at most the looptijd (an extension adds time, not money); half a cent rounds up.
    """
    if regel not in VASTSTELLINGSREGELS:
        raise ValueError(f"unknown vaststellingsregel {regel!r}")
    if looptijd_maanden < 1:
        raise ValueError("looptijd_maanden must be positive")
    einde = werkelijke_einde or geplande_einde
    maanden = min(gelopen_maanden(startdatum, einde), looptijd_maanden)
    vroeg = werkelijke_einde is not None and werkelijke_einde < geplande_einde
    verloop = (f"Het traject is gestart op {datum_nl(startdatum)} en " +
               (f"voortijdig beëindigd op {datum_nl(einde)}" if vroeg else f"geëindigd op {datum_nl(einde)}") +
               f"; het liep in {gelopen_maanden(startdatum, einde)} kalendermaanden.")
    if regel == "full":
        return Vaststelling(verleend_cents, regel, maanden, (
            f"{verloop} De regeling stelt de subsidie vast op het verleende bedrag van {bedrag(verleend_cents)}."))
    vastgesteld = deel_half_naar_boven(verleend_cents * maanden, looptijd_maanden)
    return Vaststelling(vastgesteld, regel, maanden, (
        f"{verloop} De regeling stelt de subsidie vast naar rato van de maanden waarin het traject liep: "
        f"{maanden} van de {looptijd_maanden} maanden van {bedrag(verleend_cents)} is {bedrag(vastgesteld)}."))
