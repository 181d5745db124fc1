"""The pure rules of payments: schedule and funding splits, settlement, recovery and set-off.

Standard library and the shared legal calendar only, synchronous, no I/O (bank accounts: ``payments.rekening``).
Money is integer euro cents; every split is exact (the parts add up to the whole) because one part is always
"the rest".
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from servicekit.kalender import amsterdam_dag, terugvordering_uiterlijk

# A fixed namespace: order and recovery ids are derived from business keys, so a retry computes the same id.
NAMESPACE = uuid.UUID("7b0f3f0e-2c55-4f6b-9d0c-6a1d2b3c4e5f")
DEFAULT_SCHEMA: tuple[tuple[str, int], ...] = (("toekenning", 100),)
DEFAULT_TERUGVORDERINGSTERMIJN_JAREN = 5  # Awb 4:57: no recovery later than 5 years after the vaststelling

# Order statuses
REKENING_ONTBREEKT = "rekening_ontbreekt"  # the ggz has no valid account: waits, never batched
GEREED = "gereed"  # ready for the next batch
IN_BATCH = "in_batch"
BETAALD = "betaald"  # booked
GEANNULEERD = "geannuleerd"
VERREKEND = "verrekend"  # fully set off against a recovery: nothing to transfer

# Recovery statuses
OPEN, VOLDAAN, VERJAARD = "open", "voldaan", "verjaard"


def uitvoerdatum_toegestaan(uitvoerdatum: date, vandaag: date) -> bool:
    """A batch is executed from today up to one year ahead: a date in the past (0001-01-01 reached the pain.001
    file) or far ahead is a typing error, not a payment plan."""
    tot = vandaag.replace(year=vandaag.year + 1, day=28) if (vandaag.month, vandaag.day) == (2, 29) else \
        vandaag.replace(year=vandaag.year + 1)
    return vandaag <= uitvoerdatum <= tot


#: The Europe/Amsterdam calendar date of a moment (servicekit.kalender).
today_in_amsterdam = amsterdam_dag


def derived_id(*parts: object) -> str:
    """A deterministic id for a business key (same key, same id), usable as a document key (no '.')."""
    return uuid.uuid5(NAMESPACE, ":".join(str(p) for p in parts)).hex


# -------------------------------------------------------------------------------------------- splitting


def schema_bedragen(bedrag_cents: int, schema: Sequence[tuple[str, int]]) -> list[tuple[int, str, int]]:
    """The installments of the whole schedule as (index, moment, cents); the last takes the rounding rest.

    Percentages must add up to 100 (checked): otherwise the schedule would not pay the granted amount.
    """
    if not schema:
        schema = DEFAULT_SCHEMA
    if sum(p for _, p in schema) != 100:
        raise ValueError("betaalschema moet samen 100% zijn")
    if any(p <= 0 for _, p in schema):
        raise ValueError("elk percentage in het betaalschema moet positief zijn")
    if bedrag_cents < 0:
        raise ValueError("bedrag kan niet negatief zijn")
    result: list[tuple[int, str, int]] = []
    toegekend = 0
    for index, (moment, percentage) in enumerate(schema):
        last = index == len(schema) - 1
        cents = bedrag_cents - toegekend if last else bedrag_cents * percentage // 100
        toegekend += cents
        result.append((index, moment, cents))
    return result


@dataclass(frozen=True)
class Aandeel:
    """The funding share of an amount: Rijk and gemeente(n), exact sum."""

    rijk_cents: int
    gemeente_cents: int


def financieringsaandeel(bedrag_cents: int, financiering: Mapping[str, Any] | None) -> Aandeel:
    """Split ``bedrag_cents`` (all or part of a case's amount) into Rijk and gemeente shares.

    * budget level (2023): ``rijkPercentage`` of every amount is Rijk, the rest gemeenten;
    * per case (2019): ``rijkCents``/``gemeenteCents`` of the granted amount; a part is split in proportion.
    The Rijk share is rounded down and the gemeente share is the rest, so the sum is always exact.
    """
    f = financiering or {}
    if f.get("niveau") == "budget" or ("rijkPercentage" in f and f.get("niveau") != "traject"):
        pct = int(f.get("rijkPercentage") or 0)
        if not 0 <= pct <= 100:
            raise ValueError("rijkPercentage buiten 0..100")
        rijk = bedrag_cents * pct // 100
        return Aandeel(rijk, bedrag_cents - rijk)
    if "rijkCents" in f and "gemeenteCents" in f:
        rijk_case, gemeente_case = int(f["rijkCents"] or 0), int(f["gemeenteCents"] or 0)
        basis = rijk_case + gemeente_case
        if basis <= 0:
            return Aandeel(bedrag_cents, 0)
        rijk = bedrag_cents * rijk_case // basis
        return Aandeel(rijk, bedrag_cents - rijk)
    raise ValueError("financiering onbekend: rijkCents/gemeenteCents of niveau budget met rijkPercentage")


# ------------------------------------------------------------------------------------ settlement, recovery


@dataclass(frozen=True)
class Verrekening:
    """The outcome of the vaststelling against what was ordered for the case."""

    soort: str  # nabetaling | terugvordering | geen
    betaald_cents: int
    saldo_cents: int  # vastgesteld - betaald: positive = still to pay, negative = to recover
    terugvorderen_uiterlijk: date | None


def verreken_vaststelling(vastgesteld_cents: int, betaald_cents: int, vaststellingsdatum: date,
                          termijn_jaren: int = DEFAULT_TERUGVORDERINGSTERMIJN_JAREN) -> Verrekening:
    """More than paid: pay the rest (Awb 4:52 nets the advance); less: recover the difference, at the latest
    ``termijn_jaren`` after the vaststelling (Awb 4:57), a last day on a weekend or holiday moved by the Atw;
    equal: nothing."""
    if vastgesteld_cents < 0 or betaald_cents < 0:
        raise ValueError("bedragen kunnen niet negatief zijn")
    saldo = vastgesteld_cents - betaald_cents
    if saldo > 0:
        return Verrekening("nabetaling", betaald_cents, saldo, None)
    if saldo < 0:
        return Verrekening("terugvordering", betaald_cents, saldo,
                           terugvordering_uiterlijk(vaststellingsdatum, termijn_jaren))
    return Verrekening("geen", betaald_cents, 0, None)


def verlaging_aandeel(netto: Aandeel, cents: int, financiering: Mapping[str, Any] | None) -> Aandeel:
    """The funding shares of ``cents`` taken off an open order whose net amount is split as ``netto``.

    Split like any amount, but never more of a share than the order still has of it (rounding could
    otherwise drive a share below zero); the whole net amount gives exactly its shares.
    """
    beschikbaar = netto.rijk_cents + netto.gemeente_cents
    if not 0 <= cents <= beschikbaar:
        raise ValueError("verlaging buiten 0..netto")
    if cents == beschikbaar:
        return netto
    rijk = financieringsaandeel(cents, financiering).rijk_cents
    rijk = min(max(rijk, cents - netto.gemeente_cents), netto.rijk_cents)
    return Aandeel(rijk, cents - rijk)


def verjaard(terugvorderen_uiterlijk: date, vandaag: date) -> bool:
    """A recovery past its bar can no longer be set off or collected (the last day itself still counts)."""
    return vandaag > terugvorderen_uiterlijk


@dataclass(frozen=True)
class OpenTerugvordering:
    id: str
    open_cents: int
    terugvorderen_uiterlijk: date


def verrekenbaar(terugvorderingen: Sequence[OpenTerugvordering], vandaag: date) -> list[OpenTerugvordering]:
    """Those that may still be set off, oldest bar first (so what expires first is settled first)."""
    levend = (t for t in terugvorderingen if t.open_cents > 0 and not verjaard(t.terugvorderen_uiterlijk, vandaag))
    return sorted(levend, key=lambda t: (t.terugvorderen_uiterlijk, t.id))


def verrekening_verdelen(bedrag_cents: int,
                         open_bedragen: Sequence[tuple[str, int]]) -> tuple[list[tuple[str, int]], int]:
    """Set a payment of ``bedrag_cents`` off against open recoveries in the given order.

    Returns ([(recovery id, cents set off)], net amount still to transfer). Never more than the payment nor
    more than a recovery's open amount.
    """
    rest = bedrag_cents
    delen: list[tuple[str, int]] = []
    for rid, open_cents in open_bedragen:
        if rest <= 0:
            break
        deel = min(rest, max(open_cents, 0))
        if deel > 0:
            delen.append((rid, deel))
            rest -= deel
    return delen, rest


def cents_als_euro(cents: int) -> str:
    """1234 -> "12.34" (SEPA amounts: decimal point, two decimals)."""
    if cents < 0:
        raise ValueError("negatief bedrag")
    return f"{cents // 100}.{cents % 100:02d}"

