"""The regulation model: every number a regulation sets (windows, ceilings, caps, tariffs, durations,
co-financing, deadlines) as a ``Regeling`` built from configuration (``regelingen/*.json``), and which regulation
an application falls under. Nothing here is a constant of a regulation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class Periode:
    van: date
    tot: date  # inclusive

    def bevat(self, dag: date) -> bool:
        return self.van <= dag <= self.tot


@dataclass(frozen=True)
class Budgetperiode:
    id: str
    periode: Periode
    plafond_cents: int


@dataclass(frozen=True)
class Cofinanciering:
    """Per trajectory (``traject``: fixed amounts per case) or for the budget as a whole (``budget``: shares)."""

    niveau: str  # "traject" | "budget"
    rijk_cents: int | None = None
    gemeente_cents: int | None = None
    rijk_percentage: int | None = None
    gemeenten_percentage: int | None = None


@dataclass(frozen=True)
class Betaalmoment:
    moment: str
    percentage: int


@dataclass(frozen=True)
class Regeling:
    id: str
    versie: str
    naam: str
    citeertitel: str
    aanvraagperiode: Periode
    besluitvormer: str  # "uwv" | "gemeente"
    mandaattekst: str  # template with {gemeente} and {ondertekenaar}
    budgetperioden: tuple[Budgetperiode, ...]
    cap_per_gemeente: int | None
    trajecttypen: tuple[str, ...]
    tarieven: Mapping[str, int]
    looptijd_maanden: Mapping[str, int]
    verlenging_max_maanden: int
    cofinanciering: Cofinanciering
    beslistermijn: str  # ISO 8601 duration, e.g. "P8W"
    hersteltermijn: str  # ISO 8601 duration, e.g. "P14D"
    bezwaartermijn_weken: int
    betaalschema: tuple[Betaalmoment, ...] = field(default_factory=tuple)
    vaststellingsregel: str = "pro_rata_months"
    terugvorderingstermijn_jaren: int = 5

    def tarief(self, traject_type: str) -> int | None:
        """The amount per trajectory in cents, or None when the type is not in this regulation."""
        if traject_type not in self.trajecttypen:
            return None
        return self.tarieven.get(traject_type)

    def budgetperiode(self, dag: date) -> Budgetperiode:
        """The budget period for a day; before the first its first, after the last its last."""
        for periode in self.budgetperioden:
            if periode.periode.bevat(dag):
                return periode
        ordered = sorted(self.budgetperioden, key=lambda p: p.periode.van)
        return ordered[0] if dag < ordered[0].periode.van else ordered[-1]

    def financiering(self, bedrag_cents: int) -> dict[str, object]:
        """How the amount is paid for: per case (2019: Rijk and gemeente of residence) or at budget level."""
        c = self.cofinanciering
        if c.niveau == "traject":
            return {"niveau": "traject", "rijkCents": c.rijk_cents, "gemeenteCents": c.gemeente_cents}
        rijk_pct = c.rijk_percentage or 0
        rijk = bedrag_cents * rijk_pct // 100
        return {"niveau": "budget", "rijkPercentage": rijk_pct, "gemeentenPercentage": c.gemeenten_percentage,
                "rijkCents": rijk, "gemeenteCents": bedrag_cents - rijk}


def kies_regeling(regelingen: Sequence[Regeling], aanvraagdatum: date) -> Regeling:
    """The regulation whose window holds the application date; outside every window the latest one whose
    window started before it (so that the refusal names the regulation it came too late for). Before every
    window: the earliest."""
    if not regelingen:
        raise ValueError("no regulations configured")
    for regeling in regelingen:
        if regeling.aanvraagperiode.bevat(aanvraagdatum):
            return regeling
    ordered = sorted(regelingen, key=lambda r: r.aanvraagperiode.van)
    started = [r for r in ordered if r.aanvraagperiode.van <= aanvraagdatum]
    return started[-1] if started else ordered[0]
