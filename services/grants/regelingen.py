"""Loading the regulations from ``regelingen/*.json`` (validated with pydantic) into the pure domain.

A regulation is versioned configuration: a new regulation or a changed parameter is a new or edited JSON
file, never a code change. The files are checked at start-up; a bad file stops the service with the field
named, rather than deciding cases on a wrong number.
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from grants.domain import Betaalmoment, Budgetperiode, Cofinanciering, Periode, Regeling
from servicekit.kalender import plus_duur

HERE = Path(__file__).resolve().parent
REGELINGEN_DIR = HERE / "regelingen"
GEMEENTEN_CSV = HERE / "data" / "gemeenten.csv"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


class PeriodeConfig(_Model):
    van: date
    tot: date

    @model_validator(mode="after")
    def _order(self) -> PeriodeConfig:
        if self.tot < self.van:
            raise ValueError("tot ligt voor van")
        return self


class BudgetperiodeConfig(PeriodeConfig):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")  # part of a document key: no '.' or '$'
    plafond_cents: int = Field(ge=0)


class CofinancieringConfig(_Model):
    niveau: Literal["traject", "budget"]
    rijk_cents: int | None = Field(default=None, ge=0)
    gemeente_cents: int | None = Field(default=None, ge=0)
    rijk_percentage: int | None = Field(default=None, ge=0, le=100)
    gemeenten_percentage: int | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="after")
    def _complete(self) -> CofinancieringConfig:
        if self.niveau == "traject" and (self.rijk_cents is None or self.gemeente_cents is None):
            raise ValueError("niveau traject vraagt rijkCents en gemeenteCents")
        if self.niveau == "budget":
            if self.rijk_percentage is None or self.gemeenten_percentage is None:
                raise ValueError("niveau budget vraagt rijkPercentage en gemeentenPercentage")
            if self.rijk_percentage + self.gemeenten_percentage != 100:
                raise ValueError("rijkPercentage + gemeentenPercentage moet 100 zijn")
        return self


class BetaalmomentConfig(_Model):
    moment: str = Field(min_length=1)
    percentage: int = Field(gt=0, le=100)


class RegelingConfig(_Model):
    id: str = Field(pattern=r"^[a-z0-9-]+$")
    versie: str = Field(min_length=1)
    naam: str = Field(min_length=1)
    citeertitel: str = Field(min_length=1)
    aanvraagperiode: PeriodeConfig
    besluitvormer: Literal["uwv", "gemeente"]
    mandaattekst: str = Field(min_length=1)
    budgetperioden: list[BudgetperiodeConfig] = Field(min_length=1)
    cap_per_gemeente: int | None = Field(default=None, ge=1)
    trajecttypen: list[Literal["CMD", "EPA"]] = Field(min_length=1)
    tarieven: dict[str, int]
    looptijd_maanden: dict[str, int]
    verlenging_max_maanden: int = Field(ge=0)
    cofinanciering: CofinancieringConfig
    beslistermijn: str
    hersteltermijn: str
    bezwaartermijn_weken: int = Field(ge=1)
    betaalschema: list[BetaalmomentConfig] = Field(
        default_factory=lambda: [BetaalmomentConfig(moment="toekenning", percentage=100)])
    vaststellingsregel: Literal["pro_rata_months", "full"] = "pro_rata_months"
    terugvorderingstermijn_jaren: int = Field(ge=0)

    @field_validator("mandaattekst")
    @classmethod
    def _template(cls, value: str) -> str:
        if "{gemeente}" not in value or "{ondertekenaar}" not in value:
            raise ValueError("mandaattekst moet {gemeente} en {ondertekenaar} bevatten")
        value.format(gemeente="x", ondertekenaar="y")  # no other placeholders
        return value

    @field_validator("beslistermijn", "hersteltermijn")
    @classmethod
    def _duration(cls, value: str) -> str:
        plus_duur(date(2000, 1, 1), value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RegelingConfig:
        for type_ in self.trajecttypen:
            if self.tarieven.get(type_, 0) <= 0:
                raise ValueError(f"tarieven mist een positief bedrag voor {type_}")
            if self.looptijd_maanden.get(type_, 0) <= 0:
                raise ValueError(f"looptijdMaanden mist {type_}")
        if sum(b.percentage for b in self.betaalschema) != 100:
            raise ValueError("betaalschema moet samen 100% zijn")
        if len({b.id for b in self.budgetperioden}) != len(self.budgetperioden):
            raise ValueError("budgetperioden hebben dubbele ids")
        if self.cofinanciering.niveau == "traject":
            split = (self.cofinanciering.rijk_cents or 0) + (self.cofinanciering.gemeente_cents or 0)
            for type_ in self.trajecttypen:
                if split != self.tarieven[type_]:
                    raise ValueError(f"cofinanciering per traject telt niet op tot het tarief van {type_}")
        return self

    def to_domain(self) -> Regeling:
        c = self.cofinanciering
        return Regeling(
            id=self.id, versie=self.versie, naam=self.naam, citeertitel=self.citeertitel,
            aanvraagperiode=Periode(self.aanvraagperiode.van, self.aanvraagperiode.tot),
            besluitvormer=self.besluitvormer, mandaattekst=self.mandaattekst,
            budgetperioden=tuple(Budgetperiode(b.id, Periode(b.van, b.tot), b.plafond_cents)
                                 for b in self.budgetperioden),
            cap_per_gemeente=self.cap_per_gemeente, trajecttypen=tuple(self.trajecttypen),
            tarieven=dict(self.tarieven), looptijd_maanden=dict(self.looptijd_maanden),
            verlenging_max_maanden=self.verlenging_max_maanden,
            cofinanciering=Cofinanciering(c.niveau, c.rijk_cents, c.gemeente_cents, c.rijk_percentage,
                                          c.gemeenten_percentage),
            beslistermijn=self.beslistermijn, hersteltermijn=self.hersteltermijn,
            bezwaartermijn_weken=self.bezwaartermijn_weken,
            betaalschema=tuple(Betaalmoment(b.moment, b.percentage) for b in self.betaalschema),
            vaststellingsregel=self.vaststellingsregel,
            terugvorderingstermijn_jaren=self.terugvorderingstermijn_jaren,
        )


def load_configs(directory: Path = REGELINGEN_DIR) -> list[RegelingConfig]:
    configs = [RegelingConfig.model_validate_json(path.read_text(encoding="utf-8"))
               for path in sorted(directory.glob("*.json"))]
    if len({c.id for c in configs}) != len(configs):
        raise ValueError(f"{directory}: two regulations with the same id")
    if not configs:
        raise ValueError(f"{directory}: no regulations")
    return configs


def load_regelingen(directory: Path = REGELINGEN_DIR) -> dict[str, Regeling]:
    return {c.id: c.to_domain() for c in load_configs(directory)}


def load_gemeenten(path: Path = GEMEENTEN_CSV) -> dict[str, str]:
    """CBS code -> name; for a code used more than once, the most recent name."""
    names: dict[str, tuple[str, str]] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            code, since = row["code"], row.get("valid_from") or ""
            if code not in names or since >= names[code][1]:
                names[code] = (row["name"], since)
    return {code: name for code, (name, _) in names.items()}
