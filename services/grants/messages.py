"""Wire contracts of grants: the parameters of the engine's commands (bpmn/README.md) and the HTTP bodies.

Command parameters are snake_case as named in the BPMN; the engine adds ``elementId`` and ``attempt``.
Unknown fields are refused, so a diagram that drifts from the catalogue fails loudly (to the dlq) instead
of deciding on a default.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from servicekit.vrije_tekst import VrijeTekst, geen_bsn

# Used as part of a document key (``reserveringen.<id>``): FerretDB and MongoDB forbid '.' and a leading '$'.
ID_PATTERN = r"^[A-Za-z0-9_:-]{1,100}$"
TRAJECT_TYPE = Literal["CMD", "EPA"]
SOORT = Literal["toekenning", "afwijzing", "niet_behandelen", "doorzending", "verdaging", "vaststelling", "verlenging",
                "afwijzing_verlenging"]


class CommandParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    element_id: str | None = Field(default=None, validation_alias=AliasChoices("elementId", "element_id"))
    attempt: int | None = None


def _datum(value: Any) -> Any:
    # The engine may hand over a full timestamp where a calendar date is meant; the date part is the date.
    if isinstance(value, str) and len(value) > 10 and value[10] in "T ":
        return value[:10]
    return value


def _optionele_datum(value: Any) -> Any:
    # An absent date may arrive as a rendered None from a str-typed BPMN parameter.
    return None if value in ("", "None", "null") else _datum(value)


class Toetsen(CommandParams):
    aanvraag_id: str = Field(pattern=ID_PATTERN)
    gemeente_code: str = Field(pattern=r"^\d{4}$")
    woongemeente_code: str = Field(pattern=r"^\d{4}$")
    traject_type: TRAJECT_TYPE
    aanvraagdatum: date
    ontvangen_op: datetime
    ggz_kvk_nummer: str | None = Field(default=None, pattern=r"^\d{8}$")

    _d = field_validator("aanvraagdatum", mode="before")(_datum)


class Criteria(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True)

    doelgroep: bool = False
    wil_betaald_werk: bool = False
    geen_ander_traject: bool = False
    certificaat_geldig_tot: date | None = None

    _d = field_validator("certificaat_geldig_tot", mode="before")(_datum)


class Reserveren(CommandParams):
    aanvraag_id: str = Field(pattern=ID_PATTERN)
    regeling: str
    gemeente_code: str = Field(pattern=r"^\d{4}$")
    traject_type: TRAJECT_TYPE
    bedrag_cents: int = Field(ge=0)
    aanvraagdatum: date
    gewenste_startdatum: date
    volledig_ontvangen_op: datetime | None = None
    #: The place in the order of receipt (intake numbers complete applications; allocator.py). None: an
    #: application completed before numbering existed, decided at once.
    volgnummer: int | None = Field(default=None, ge=1)
    criteria: Criteria = Field(default_factory=Criteria)

    _d = field_validator("aanvraagdatum", "gewenste_startdatum", mode="before")(_datum)


class VolgnummerToegekend(BaseModel):
    """ips.aanvraag.volgnummer_toegekend.v1 (intake): the application is complete and has this place in the
    order of receipt."""

    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True)

    aanvraag_id: str = Field(pattern=ID_PATTERN)
    volgnummer: int = Field(ge=1)


class VolgnummerIngetrokken(BaseModel):
    """ips.aanvraag.ingetrokken.v1 (intake), as far as the order of receipt needs it."""

    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True)

    aanvraag_id: str = Field(pattern=ID_PATTERN)
    volgnummer: int | None = Field(default=None, ge=1)


class Vastleggen(CommandParams):
    aanvraag_id: str = Field(pattern=ID_PATTERN)


class Vrijgeven(CommandParams):
    aanvraag_id: str = Field(pattern=ID_PATTERN)
    reden: str | None = None


class GrondParam(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    code: str = Field(min_length=1, max_length=100)
    tekst: VrijeTekst = Field(min_length=1, max_length=4000)  # a BSN here: to the dlq, never into a letter


class OndertekenaarParam(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    subject: str = Field(min_length=1, max_length=200)
    naam: str = Field(default="", max_length=200)
    mandaten: list[str] = Field(default_factory=list)


class InstemmingParam(BaseModel):
    """The gemeente's consent statement (toestemmingsverklaring) an ips-cmd-2019 grant needs; the gemeente's
    official records it in the diagram (UserTask_instemming)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    verleend: bool
    kenmerk: str = Field(min_length=1, max_length=100)
    datum: date
    gemeente_code: str = Field(alias="gemeenteCode", pattern=r"^\d{4}$")
    vastgelegd_door: str | None = Field(default=None, alias="vastgelegdDoor", max_length=200)


class BeschikkingOpstellen(CommandParams):
    aanvraag_id: str = Field(pattern=ID_PATTERN)
    soort: SOORT
    gemeente_code: str = Field(pattern=r"^\d{4}$")
    regeling: str
    traject_type: TRAJECT_TYPE | None = None
    bedrag_cents: int | None = Field(default=None, ge=0)
    gronden: list[GrondParam] | None = None
    motivering: Annotated[str, Field(max_length=20000), AfterValidator(geen_bsn)] | None = None
    ondertekenaar: OndertekenaarParam | None = None
    nieuwe_beslisdatum: date | None = None
    huidige_beslisdatum: date | None = None
    van_gemeente_code: str | None = Field(default=None, pattern=r"^\d{4}$")
    naar_gemeente_code: str | None = Field(default=None, pattern=r"^\d{4}$")
    ggz_kvk_nummer: str | None = Field(default=None, pattern=r"^\d{8}$")
    nieuwe_einddatum: date | None = None
    maanden: int | None = Field(default=None, ge=0, le=1200)
    vastgesteld_cents: int | None = Field(default=None, ge=0)
    instemming: InstemmingParam | None = None

    _d = field_validator("nieuwe_beslisdatum", "huidige_beslisdatum", "nieuwe_einddatum",
                         mode="before")(_optionele_datum)


class VerlengingToetsen(CommandParams):
    aanvraag_id: str = Field(pattern=ID_PATTERN)
    regeling: str
    maanden: int = Field(ge=0, le=1200)
    einddatum: date
    eerdere_verlengingen: int = Field(default=0, ge=0)

    _d = field_validator("einddatum", mode="before")(_datum)


class VaststellingBerekenen(CommandParams):
    aanvraag_id: str = Field(pattern=ID_PATTERN)
    regeling: str
    bedrag_cents: int = Field(ge=0)
    startdatum: date
    geplande_einddatum: date
    werkelijke_einddatum: date | None = None
    looptijd_maanden: int = Field(ge=1, le=1200)

    _d = field_validator("startdatum", "geplande_einddatum", mode="before")(_datum)
    _o = field_validator("werkelijke_einddatum", mode="before")(_optionele_datum)


class FinancieelRegistreren(CommandParams):
    """The case's new totals (not increments): a repeat or a later correction sets them again."""

    aanvraag_id: str = Field(pattern=ID_PATTERN)
    betaald_cents: int = Field(ge=0)
    teruggevorderd_cents: int = Field(ge=0)
    vastgesteld_cents: int | None = Field(default=None, ge=0)


# ---------------------------------------------------------------------------------------------------- HTTP


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Budget(_Out):
    regeling: str
    periode: str
    plafond_cents: int
    beschikbaar_cents: int
    gereserveerd_cents: int
    vastgelegd_cents: int
    betaald_cents: int = 0
    teruggevorderd_cents: int = 0
    vastgesteld_cents: int = 0
    aantal_reserveringen: int
    revision: int


class PlafondWijzigen(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    plafond_cents: int = Field(ge=0, le=10**13)
