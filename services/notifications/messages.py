"""Wire contracts of notifications: the parameters of ``ips.bericht.versturen.v1`` (bpmn/README.md) and the
delivery log as the API shows it (camelCase).

The command's own parameters are strict (extra="forbid"): a diagram that drifts from the catalogue fails
loudly. The nested ``beschikking`` is grants' result, which may grow new fields; those are ignored.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

ID_PATTERN = r"^[A-Za-z0-9_:-]{1,100}$"


class BeschikkingGegevens(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True)

    beschikking_id: str = Field(pattern=ID_PATTERN)
    kenmerk: str = Field(min_length=1, max_length=100)
    soort: str = Field(pattern=r"^[a-z_]{1,40}$")
    datum: date | None = None
    bezwaartermijn_einde: date | None = None
    bedrag_cents: int | None = None
    financiering: dict[str, Any] | None = None
    mandaat: str | None = Field(default=None, max_length=2_000)
    gemeente_code: str | None = None
    tekst: str | None = Field(default=None, max_length=100_000)  # from an older grants, which sent words
    # grants' decision as data (grants.domain.briefgegevens); the templates make the letter's words from it
    brief: dict[str, Any] | None = None


class BerichtVersturen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    element_id: str | None = Field(default=None, validation_alias=AliasChoices("elementId", "element_id"))
    attempt: int | None = None
    aanvraag_id: str = Field(pattern=ID_PATTERN)
    gemeente_code: str = Field(pattern=r"^\d{4}$")
    ggz_kvk_nummer: str | None = Field(default=None, pattern=r"^\d{8}$")
    beschikking: BeschikkingGegevens
    #: More gemeenten in CC besides ``gemeente_code``: the competent gemeente on a forwarding notice (Awb 2:3)
    cc_gemeente_codes: list[Annotated[str, Field(pattern=r"^\d{4}$")]] = Field(default_factory=list, max_length=5)

    @field_validator("ggz_kvk_nummer", mode="before")
    @classmethod
    def _leeg_is_onbekend(cls, value: Any) -> Any:
        # The engine renders a case without a known ggz as an empty string; the message then has no address.
        return None if value == "" else value


class Poging(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    op: datetime
    fout: str | None = None
    smtp_code: int | None = None


class Bericht(BaseModel):
    """One entry of the delivery log."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: str
    aanvraag_id: str
    beschikking_id: str
    kenmerk: str
    soort: str
    aan: list[str]
    cc: list[str]
    onderwerp: str
    status: str
    ontbrekend: list[str] = []
    pogingen: list[Poging] = []
    aangemaakt_op: datetime
    volgende_poging: datetime | None = None
    verzonden_op: datetime | None = None
    smtp_antwoord: str | None = None
    bijlage: str
    bijlage_bytes: int
    bijlage_sha256: str


class Brief(BaseModel):
    """A beschikking's letter as notifications keeps it: the text and where its PDF is."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    beschikking_id: str
    bericht_id: str
    aanvraag_id: str
    kenmerk: str
    soort: str
    datum: date | None = None
    tekst: str = Field(description="De tekst van de beschikking, woord voor woord zoals in de PDF.")
    pdf: str = Field(description="Pad van de PDF bij deze service.")
    bestandsnaam: str
    pdf_bytes: int
    pdf_sha256: str
