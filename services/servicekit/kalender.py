"""The one legal calendar of ipsflow: pure, synchronous, standard library only.

Every deadline the system computes is derived here, so that grants (beslistermijn, bezwaartermijn), intake
(hersteltermijn), the process engine (the decision date after Awb 4:15) and payments (terugvorderingstermijn) count
days the same way. Also here: ISO 8601 date durations, periods of calendar months, the Amsterdam day of a moment,
and the Dutch notation of dates and amounts. (The elfproef has its one home in ``servicekit.personal_data``.)

The law it follows:

- **Algemene termijnenwet (Atw) art. 1**: a statutory term that ends on a Saturday, Sunday or generally recognised
  holiday runs on to the next day that is none of these (``termijn_einde``).
- **Atw art. 3 lid 1**: Nieuwjaarsdag, Tweede Paasdag, Hemelvaartsdag, Tweede Pinksterdag, both Kerstdagen, the day
  the King's birthday is celebrated (Koningsdag: 27 April, or 26 April when the 27th is a Sunday) and 5 May (every
  year). Eerste Paas- and Pinksterdag are Sundays anyway (listed for completeness). **Lid 2**: Goede Vrijdag counts
  too. **Lid 3**: the Crown adds days by a "Besluit gelijkstelling"; those are data, ``atw_gelijkstellingen.json``
  beside this file (date, besluit, Staatscourant reference), so a new besluit is a data change, not a code change.
- **Awb 4:15 lid 1 sub a** with the Atw: the decision term is suspended from the day after the day the applicant
  was asked to complete the application (Awb 4:5) up to, not including, the day it was completed ("tot de dag").
  The suspension extends the statutory term itself; the Atw then applies to the end of the extended term, never to
  a date that was already moved (``opgeschorte_termijn_einde``).
"""

from __future__ import annotations

import calendar
import functools
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
GELIJKSTELLINGEN_FILE = Path(__file__).resolve().parent / "atw_gelijkstellingen.json"

MAANDEN = ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober",
           "november", "december")

# ------------------------------------------------------------------------------------------------- durations

_DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?$")


def is_duur(text: str) -> bool:
    """True for an ISO 8601 date duration we can add: ``PnYnMnWnD`` with at least one part (``P14D``, ``P8W``)."""
    return bool(_DURATION.match(text)) and text != "P"


def plus_duur(dag: date, duur: str) -> date:
    """``dag`` plus an ISO 8601 date duration (years and months first, clamped to the month's last day; then weeks
    and days). Raises ValueError for anything else."""
    match = _DURATION.match(duur)
    if not match or duur == "P":
        raise ValueError(f"not an ISO 8601 date duration: {duur!r}")
    years, months, weeks, days = (int(g) if g else 0 for g in match.groups())
    index = dag.month - 1 + months + 12 * years
    year, month = dag.year + index // 12, index % 12 + 1
    return date(year, month, min(dag.day, laatste_dag(year, month))) + timedelta(weeks=weeks, days=days)


def laatste_dag(jaar: int, maand: int) -> int:
    """The number of the last day of a month."""
    return calendar.monthrange(jaar, maand)[1]


def plus_jaren(dag: date, jaren: int) -> date:
    """``dag`` plus (or minus) whole years; 29 February becomes 28 February in a common year; beyond the range of
    ``date`` the result is date.min or date.max."""
    year = dag.year + jaren
    if year < date.min.year:
        return date.min
    if year > date.max.year:
        return date.max
    return date(year, dag.month, min(dag.day, laatste_dag(year, dag.month)))


def einde_periode(start: date, maanden: int) -> date:
    """The last day of a period of ``maanden`` calendar months that starts on ``start``: the day before the same day
    number ``maanden`` months later, or that month's last day when it has no such day (2024-02-01 + 24 ->
    2026-01-31; 2023-03-31 + 1 -> 2023-04-30; 2024-01-31 + 1 -> 2024-02-29)."""
    index = start.year * 12 + start.month - 1 + maanden
    year, month = index // 12, index % 12 + 1
    last = laatste_dag(year, month)
    if start.day > last:
        return date(year, month, last)
    return date(year, month, start.day) - timedelta(days=1)


# -------------------------------------------------------------------------------------------- legal days


def amsterdam_dag(moment: datetime) -> date:
    """The Europe/Amsterdam calendar date of a moment (a naive datetime is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(AMSTERDAM).date()


def begin_volgende_dag(dag: date) -> datetime:
    """The UTC moment the Amsterdam day after ``dag`` starts: from then on a term ending on ``dag`` has passed."""
    return datetime.combine(dag + timedelta(days=1), time(0), tzinfo=AMSTERDAM).astimezone(UTC)


# ------------------------------------------------------------------------------------ Algemene termijnenwet


@dataclass(frozen=True)
class Gelijkstelling:
    """A day the Crown declared equal to a generally recognised holiday (Atw art. 3 lid 3)."""

    datum: date
    besluit: str  # citeertitel of the Besluit gelijkstelling
    staatscourant: str | None  # where it was published, when known


def laad_gelijkstellingen(text: str) -> tuple[Gelijkstelling, ...]:
    """Parse the data file (see ``atw_gelijkstellingen.json``); raises ValueError on an entry without a date or
    without the besluit that made it."""
    raw = json.loads(text)
    found: list[Gelijkstelling] = []
    for entry in raw.get("gelijkstellingen", []):
        besluit = str(entry.get("besluit") or "").strip()
        if not besluit:
            raise ValueError(f"gelijkstelling {entry.get('datum')!r} without its besluit")
        ref = entry.get("staatscourant")
        found.append(Gelijkstelling(date.fromisoformat(str(entry["datum"])), besluit, str(ref) if ref else None))
    return tuple(sorted(found, key=lambda g: g.datum))


@functools.cache
def gelijkstellingen() -> tuple[Gelijkstelling, ...]:
    """Every gelijkgestelde dag in ``atw_gelijkstellingen.json`` (read once)."""
    return laad_gelijkstellingen(GELIJKSTELLINGEN_FILE.read_text(encoding="utf-8"))


def paasdag(jaar: int) -> date:
    """Easter Sunday (Gregorian calendar; the anonymous Gregorian algorithm)."""
    a, b, c = jaar % 19, jaar // 100, jaar % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    maand = (h + ell - 7 * m + 114) // 31
    dag = (h + ell - 7 * m + 114) % 31 + 1
    return date(jaar, maand, dag)


def koningsdag(jaar: int) -> date:
    """27 April, the King's birthday; celebrated on Saturday 26 April when the 27th is a Sunday."""
    dag = date(jaar, 4, 27)
    return dag - timedelta(days=1) if dag.weekday() == 6 else dag


@functools.cache
def _feestdagen(jaar: int) -> dict[date, str]:
    pasen = paasdag(jaar)
    dagen = {
        date(jaar, 1, 1): "Nieuwjaarsdag",
        pasen - timedelta(days=2): "Goede Vrijdag",  # art. 3 lid 2
        pasen: "Eerste Paasdag",
        pasen + timedelta(days=1): "Tweede Paasdag",
        koningsdag(jaar): "Koningsdag",
        date(jaar, 5, 5): "Bevrijdingsdag",
        pasen + timedelta(days=39): "Hemelvaartsdag",
        pasen + timedelta(days=49): "Eerste Pinksterdag",
        pasen + timedelta(days=50): "Tweede Pinksterdag",
        date(jaar, 12, 25): "Eerste Kerstdag",
        date(jaar, 12, 26): "Tweede Kerstdag",
    }
    for g in gelijkstellingen():
        if g.datum.year == jaar:
            dagen.setdefault(g.datum, f"gelijkgestelde dag ({g.besluit})")
    return dagen


def feestdag(dag: date) -> str | None:
    """The name of the Atw holiday (or gelijkgestelde dag) on ``dag``, else None."""
    return _feestdagen(dag.year).get(dag)


def feestdagen(jaar: int) -> frozenset[date]:
    """Every generally recognised holiday of the Atw in ``jaar`` (art. 3 lid 1 and 2) and every day equal to one
    (lid 3), whatever weekday they fall on."""
    return frozenset(_feestdagen(jaar))


def is_werkdag(dag: date) -> bool:
    """Neither a Saturday, a Sunday nor an Atw holiday."""
    return dag.weekday() < 5 and feestdag(dag) is None


def termijn_einde(dag: date) -> date:
    """Atw art. 1: a term that ends on ``dag`` ends on the first day from ``dag`` on that is a working day."""
    while not is_werkdag(dag):
        dag += timedelta(days=1)
    return dag


# ---------------------------------------------------------------------------------------------- Awb terms


def bezwaartermijn_einde(verzonden: date, weken: int = 6) -> date:
    """Awb 6:7/6:8: ``weken`` weeks from the day after sending, so ending on ``verzonden + weken`` weeks; Atw art. 1
    moves it past a weekend or holiday (sent 2026-04-02: 2026-05-14 is Hemelvaartsdag, 15 May gelijkgesteld, then
    a weekend: 2026-05-18)."""
    return termijn_einde(verzonden + timedelta(weeks=weken))


def termijn_vanaf(begin: date, duur: str) -> date:
    """A term of ``duur`` (ISO 8601) counted from ``begin``, its end moved by Atw art. 1: the beslistermijn (Awb 4:13,
    from the day of receipt) and the hersteltermijn (Awb 4:5, from the day of the request). The hersteltermijn is
    set by the gemeente, not by a law; ending it on a working day as well only gives the applicant more time."""
    return termijn_einde(plus_duur(begin, duur))


def opschortingsdagen(gevraagd_op: date, aangevuld_op: date | None) -> int:
    """Awb 4:15 lid 1 sub a: the days from the day after the request to complete (4:5) up to, not including, the day
    the application was completed (asked on 2 March, completed on 16 March: 3..15 March, 13 days)."""
    if aangevuld_op is None:
        return 0
    return max((aangevuld_op - gevraagd_op).days - 1, 0)


def opgeschorte_termijn_einde(wettelijk_einde: date, gevraagd_op: date, aangevuld_op: date | None) -> date:
    """The decision date after an Awb 4:15 suspension: the statutory term's own end (``wettelijk_einde``, NOT yet
    moved by the Atw) plus the suspended days, and only then moved by Atw art. 1."""
    return termijn_einde(wettelijk_einde + timedelta(days=opschortingsdagen(gevraagd_op, aangevuld_op)))


def terugvordering_uiterlijk(vastgesteld_op: date, jaren: int) -> date:
    """Awb 4:57 lid 3 (with 4:49): no recovery after ``jaren`` years from the day of the vaststelling; the last day
    is moved by Atw art. 1."""
    return termijn_einde(plus_jaren(vastgesteld_op, jaren))


# ---------------------------------------------------------------------------------------- Dutch notation


def datum_nl(dag: date) -> str:
    """'2 april 2026'."""
    return f"{dag.day} {MAANDEN[dag.month - 1]} {dag.year}"


def bedrag(cents: int) -> str:
    """Integer euro cents in Dutch notation: 1132500 -> '€ 11.325,00', -5050 -> '€ -50,50'."""
    euros, rest = divmod(abs(cents), 100)
    sign = "-" if cents < 0 else ""
    return f"€ {sign}{euros:,}".replace(",", ".") + f",{rest:02d}"


def euro_decimaal(cents: int) -> str:
    """Euros with a decimal comma and no thousands separator, as a spreadsheet in Dutch reads a number: 1887,50."""
    sign = "-" if cents < 0 else ""
    euros, rest = divmod(abs(cents), 100)
    return f"{sign}{euros},{rest:02d}"
