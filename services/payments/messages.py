"""Wire contracts of payments: the engine's command parameters (bpmn/README.md, "The trajectory after the
grant") and the HTTP bodies.

Command parameters are snake_case as named in the BPMN; the engine adds ``elementId`` and ``attempt``.
Unknown fields are refused, so a diagram that drifts from the catalogue fails loudly (to the dlq).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

# Ids are parts of document keys (``boekingen.<id>``): no '.' and no leading '$'.
ID_PATTERN = r"^[A-Za-z0-9_:-]{1,100}$"
KVK = r"^\d{8}$"


def _datum(value: Any) -> Any:
    # The engine may hand over a full timestamp where a calendar date is meant.
    if isinstance(value, str) and len(value) > 10 and value[10] in "T ":
        return value[:10]
    return value


class CommandParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    element_id: str | None = Field(default=None, validation_alias=AliasChoices("elementId", "element_id"))
    attempt: int | None = None


class Betaalmoment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    moment: str = Field(pattern=r"^[a-z_]{1,40}$")
    percentage: int = Field(gt=0, le=100)


class OpdrachtenAanmaken(CommandParams):
    aanvraag_id: str = Field(pattern=ID_PATTERN)
    beschikking_id: str = Field(pattern=ID_PATTERN)
    ggz_kvk_nummer: str = Field(pattern=KVK)
    gemeente_code: str = Field(pattern=r"^\d{4}$")
    regeling: str = Field(min_length=1, max_length=100)
    bedrag_cents: int = Field(ge=0, le=10**11)
    financiering: dict[str, Any]
    betaalschema: list[Betaalmoment] | None = None
    moment: str = Field(default="toekenning", pattern=r"^[a-z_]{1,40}$")
    verrekenen: bool = True

    @model_validator(mode="after")
    def _schema(self) -> OpdrachtenAanmaken:
        if self.betaalschema and sum(b.percentage for b in self.betaalschema) != 100:
            raise ValueError("betaalschema moet samen 100% zijn")
        return self


class StopberichtDoorgeven(CommandParams):
    aanvraag_id: str = Field(pattern=ID_PATTERN)
    einddatum: date

    _d = field_validator("einddatum", mode="before")(_datum)


class Verrekenen(CommandParams):
    aanvraag_id: str = Field(pattern=ID_PATTERN)
    ggz_kvk_nummer: str = Field(pattern=KVK)
    gemeente_code: str = Field(pattern=r"^\d{4}$")
    regeling: str = Field(min_length=1, max_length=100)
    vastgesteld_cents: int = Field(ge=0, le=10**11)
    vaststellingsdatum: date
    beschikking_id: str = Field(pattern=ID_PATTERN)
    terugvorderingstermijn_jaren: int = Field(default=5, ge=0, le=50)
    verrekenen: bool = True
    financiering: dict[str, Any] | None = None

    _d = field_validator("vaststellingsdatum", mode="before")(_datum)


# ---------------------------------------------------------------------------------------------------- HTTP


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class BatchAanmaken(_In):
    max_opdrachten: int = Field(default=1000, ge=1, le=5000)
    uitvoerdatum: date | None = None


# Answers (camelCase, as the API always spoke); the OpenAPI documents them.


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class BatchView(_Out):
    batch_id: str
    status: str
    aantal: int
    control_sum_cents: int
    opdrachten: list[str] = Field(description="De betaalopdrachten in deze batch.")
    uitvoerdatum: date
    aangemaakt_op: str
    verzonden_op: str | None = None
    geboekt_op: str | None = None


class OpdrachtView(_Out):
    opdracht_id: str
    aanvraag_id: str
    beschikking_id: str
    ggz_kvk_nummer: str
    gemeente_code: str
    regeling: str
    moment: str
    bedrag_cents: int
    verrekend_cents: int
    netto_cents: int
    rijk_cents: int
    gemeente_cents: int
    status: str
    batch_id: str | None = None


class TerugvorderingView(_Out):
    terugvordering_id: str
    aanvraag_id: str
    bedrag_cents: int
    open_cents: int
    verrekend: dict[str, int] = Field(description="Verrekend per betaalopdracht (cents).")
    vaststellingsdatum: date
    terugvorderen_uiterlijk: date
    status: str


class Kolommen(_Out):
    besteld_cents: int
    geannuleerd_cents: int
    verrekend_cents: int
    betaald_cents: int
    teruggevorderd_cents: int


class GrootboekView(_Out):
    ggz_kvk_nummer: str
    totaal: Kolommen
    rijk: Kolommen
    gemeente: Kolommen
    open_terugvorderingen: list[str]
