"""The process engine's HTTP schemas: the request bodies it accepts and the views it answers with (camelCase JSON,
``View``), documented field by field for the OpenAPI description. ``api`` declares the routes with them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from process_engine import dmn_testbank


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Deployment(ApiModel):
    bestanden: dict[str, str] = Field(description="Bestandsnaam (.bpmn/.dmn) → XML.", min_length=1)
    testgevallen: dict[str, list[dmn_testbank.Testgeval]] | None = Field(default=None, description=(
        "DMN-bestandsnaam → testgevallen (de testbank); zonder: die van de nieuwste versie van dat bestand. "
        "Eén falend testgeval en er wordt niets uitgerold."))
    toelichting: str | None = Field(default=None, max_length=1000,
                                    description="Waarom deze versie (de studio vraagt erom); bij de versie bewaard.")


class Migration(ApiModel):
    definitie_hash: str = Field(min_length=64, max_length=64)


class TaskCompletion(ApiModel):
    gegevens: dict[str, Any]


class IncidentRetry(ApiModel):
    variabelen: dict[str, Any] = Field(default_factory=dict, description=(
        "Zaakvariabelen die vóór het opnieuw proberen worden gezet; alleen de variabelen die functioneel beheer "
        "mag wijzigen (zaakvariabelen.BEWERKBAAR), zonder persoonsgegevens."))


class ClockSetting(ApiModel):
    nu: datetime = Field(description="De tijd die de engine vanaf nu aanhoudt (met tijdzone).")

    @field_validator("nu")
    @classmethod
    def _binnen_oefenbereik(cls, nu: datetime) -> datetime:
        # A rehearsal needs dates the regulations know (from 2019), and no far future that overflows timers.
        # Measured against real time: the adjustable clock itself may already have been moved.
        if nu.tzinfo is not None and not KLOK_VANAF <= nu <= klok_tot(datetime.now(UTC)):
            raise ValueError(f"ligt niet tussen 2019-01-01 en {KLOK_JAREN_VOORUIT} jaar na vandaag")
        return nu


#: The adjustable clock's range: from the first regulation (2019) to ten years ahead of real time.
KLOK_VANAF = datetime(2019, 1, 1, tzinfo=UTC)
KLOK_JAREN_VOORUIT = 10


def klok_tot(nu: datetime) -> datetime:
    """The latest time the clock may be set to: ten years after ``nu`` (29 February → 28 February)."""
    jaar = nu.year + KLOK_JAREN_VOORUIT
    return nu.replace(year=jaar, day=28) if (nu.month, nu.day) == (2, 29) else nu.replace(year=jaar)


class View(BaseModel):
    """An answer: camelCase like the requests; FastAPI validates and documents it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class TaskView(View):
    id: str
    zaak_id: str
    element_id: str
    naam: str | None = None
    lane: str | None = None
    geclaimd_door: str | None = Field(default=None, description="Wie de taak geclaimd heeft (sub).")
    sinds: datetime | None = None
    ontvangen_op: datetime | None = Field(default=None, description="Ontvangstdatum van de aanvraag (Awb 4:13).")
    beslisdatum: date | None = Field(default=None, description=(
        "Uiterste beslisdatum van de aanvraag: ontvangst plus beslistermijn, verschoven door een opschorting "
        "(Awb 4:15) of verdaging (Awb 4:14) en de Algemene termijnenwet."))
    te_laat: bool | None = Field(default=None, description="De beslistermijn is verstreken (Awb 4:13).")


class TaskDetail(TaskView):
    formulier: dict[str, Any] | None = Field(default=None, description="JSON Schema van het formulier.")


class IncidentBasis(View):
    """What an incident says: on its case (``Incident``) and in the engine-wide list (``OpenIncident``)."""

    command_id: str
    command_type: str | None = None
    element_id: str | None = None
    attempt: int | None = None
    error_code: str | None = None
    message: str | None = None
    at: datetime | None = None


class Incident(IncidentBasis):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")
    resolved: bool = False


class HistoryEntry(View):
    element_id: str
    name: str | None = None
    ended_at: datetime | None = None


class JournalEntry(View):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")
    at: datetime
    what: str


class CaseView(View):
    id: str
    status: str
    process_id: str
    definitie_hash: str
    actieve_elementen: list[str]
    wacht_op_berichten: list[str]
    volgende_timer: datetime | None = None
    taken: list[TaskView]
    incidenten: list[Incident]
    variabelen: dict[str, Any] = Field(description="Alleen wat uw organisatietype mag zien.")
    geschiedenis: list[HistoryEntry]
    journaal: list[JournalEntry]
    bewaarde_berichten: list[str]


class CaseSummary(View):
    id: str
    status: str
    process_id: str
    definitie_hash: str
    actieve_elementen: list[str]
    open_incidenten: int = Field(description="Aantal onopgeloste incidenten.")
    gestart_op: datetime | None = None
    variabelen: dict[str, Any] = Field(description="Wat functioneel beheer mag zien (zaakvariabelen.py).")


class OpenIncident(IncidentBasis):
    zaak_id: str
    process_id: str
    definitie_hash: str


class ElementCount(View):
    actief: int = Field(description="Zaken die nu op dit element staan.")
    incident: int = Field(description="Zaken met een open incident op dit element.")
    afgerond: int = Field(description="Zaken die dit element hebben afgerond.")


class DefinitionStatistics(View):
    hash: str
    zaken: int
    elementen: dict[str, ElementCount]


class CasePage(View):
    totaal: int = Field(description="Aantal zaken dat aan de filters voldoet (alle pagina's).")
    zaken: list[CaseSummary]


class DefinitionView(View):
    hash: str
    process_id: str
    versie: int | None = None
    uitgerold: datetime
    uitgerolddoor: str
    toelichting: str | None = None
    startberichten: list[str]
    berichten: list[str]


class DefinitionDetail(DefinitionView):
    bestanden: dict[str, str] = Field(description="Bestandsnaam → XML.")
