"""Wire contracts of the intake service: the portal's JSON (camelCase) and the engine command parameters."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from servicekit.kalender import is_duur
from servicekit.personal_data import elfproef
from servicekit.vrije_tekst import VrijeTekst, geen_bsn

KVK = r"^[0-9]{8}$"
# Free text up to 2000 characters without a BSN; the length inside the annotation, so that an optional field
# still reports string_too_long (a Field constraint outside an Optional becomes a generic too_long).
Toelichting = Annotated[str, Field(max_length=2000), AfterValidator(geen_bsn)]
CBS_CODE = r"^[0-9]{4}$"


class PortalModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              str_strip_whitespace=True)


class Ondertekening(PortalModel):
    kandidaat: bool = Field(description="De kandidaat heeft de aanvraag ondertekend.")
    ggz_instelling: bool = Field(description="De ggz-instelling heeft de aanvraag ondertekend.")


class Modelgetrouwheid(PortalModel):
    certificaatnummer: str | None = Field(default=None, max_length=64)
    geldig_tot: date | None = Field(default=None, description="Einddatum van het modelgetrouwheidscertificaat.")


class Doelgroep(PortalModel):
    uitkering: Literal["bijstand", "ioaw", "ioaz", "geen", "ww", "wia", "wajong", "anders"] = Field(
        description="Uitkering van de kandidaat; alleen bijstand, ioaw, ioaz en geen vallen onder de doelgroep.")
    wil_betaald_werk: bool
    andere_reintegratie: bool = Field(description="De kandidaat volgt al een ander re-integratietraject.")


class AanvraagIndienen(PortalModel):
    """A subsidy application for one IPS trajectory, as a ggz-instelling submits it.

    The client is identified by the ggz's own pseudonymous reference and the BSN (stored encrypted, never
    returned). Fields the regulation does not need (nationality, address, gender, diagnosis) are not part of
    the contract and are refused as unknown.
    """

    client_referentie: VrijeTekst = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$",
                                          description="Pseudoniem kenmerk van de kandidaat bij de ggz-instelling; "
                                                      "geen BSN (een nummer dat de elfproef haalt wordt geweigerd).")
    bsn: str = Field(pattern=r"^[0-9]{9}$", description="BSN van de kandidaat; wordt versleuteld opgeslagen.")
    gemeente_code: str = Field(pattern=CBS_CODE, description="CBS-code van de gemeente waaraan de aanvraag is gericht.")
    woongemeente_code: str = Field(pattern=CBS_CODE, description="CBS-code van de woongemeente van de kandidaat.")
    traject_type: Literal["CMD", "EPA"]
    aanvraagdatum: date | None = Field(default=None, description="Datum op het formulier; standaard vandaag.")
    gewenste_startdatum: date
    ggz_kvk_nummer: str = Field(pattern=KVK)
    ggz_agb_code: str | None = Field(default=None, pattern=KVK)
    ondertekening: Ondertekening
    modelgetrouwheid: Modelgetrouwheid | None = None
    doelgroep: Doelgroep
    toelichting: Toelichting | None = None

    @field_validator("bsn")
    @classmethod
    def _bsn_elfproef(cls, value: str) -> str:
        if not elfproef(value):
            raise ValueError("BSN voldoet niet aan de elfproef")  # never quote the value
        return value


class AanvraagAanvullen(PortalModel):
    """Supplement after a repair request; documents are uploaded separately before."""

    ondertekening: Ondertekening | None = None
    modelgetrouwheid: Modelgetrouwheid | None = None
    doelgroep: Doelgroep | None = None


class VerlengingVragen(PortalModel):
    """A request to extend the running trajectory; the gemeente decides by beschikking (the regulation's
    maximum and the single extension are checked there, so a refusal is a decision you can object to)."""

    maanden: int = Field(ge=1, le=24, strict=True, description="Gevraagde verlenging in maanden (1 t/m 24).")
    toelichting: Toelichting | None = None


class StopberichtMelden(PortalModel):
    """Stopbericht deel 1: the trajectory ends early, on ``einddatum`` (not before its start date)."""

    einddatum: date


class VerlengingsverzoekView(PortalModel):
    id: str
    maanden: int
    toelichting: str | None = None
    gevraagd_op: datetime


class StopberichtView(PortalModel):
    einddatum: date
    gemeld_op: datetime


class AanvraagOntvangen(PortalModel):
    id: str
    status: str
    ontvangen_op: datetime
    gemeente_code: str
    woongemeente_code: str
    traject_type: str


class DocumentMetadata(PortalModel):
    id: str
    soort: str
    bestandsnaam: str
    content_type: str
    grootte: int
    sha256: str
    ontvangen_op: datetime


class HerstelView(PortalModel):
    ontbrekend: list[Any]
    uiterlijk: date


class GrondView(PortalModel):
    code: str = Field(description="Bijv. subsidieplafond_bereikt, inhoudelijke_beoordeling.")
    tekst: str


class BesluitView(PortalModel):
    soort: str | None
    datum: str | None
    bezwaartermijn_einde: str | None
    bedrag_cents: int | None
    document_id: str | None = Field(default=None, description=(
        "Alleen bij brieven van vóór de eenmalige opslag: de brief als document bij deze aanvraag."))
    kenmerk: str | None = None
    beschikking_id: str | None = None
    brief: str | None = Field(default=None, description=(
        "Pad van de brief (tekst, en PDF onder …/pdf) bij de notificatieservice: de enige opgeslagen versie."))
    gronden: list[GrondView] = Field(default_factory=list, description="De weigeringsgronden van een afwijzing.")


class BeslistermijnView(PortalModel):
    beslisdatum: date = Field(description=(
        "Uiterste beslisdatum: ontvangst plus beslistermijn (Awb 4:13), na de Algemene termijnenwet."))
    reden: Literal["beslistermijn_awb_4_13", "opschorting_awb_4_15", "verdaging_awb_4_14"] = Field(description=(
        "Waarom het deze datum is: de wettelijke termijn, verlengd met een opschorting na een herstelverzoek "
        "(Awb 4:15), of verdaagd met een mededeling (Awb 4:14)."))
    oorspronkelijke_beslisdatum: date | None = Field(default=None, description="De eerste beslisdatum.")
    opgeschorte_dagen: int = Field(default=0, description="Dagen opschorting (Awb 4:15).")
    te_laat: bool = Field(description=(
        "De beslisdatum is verstreken zonder besluit, of het besluit kwam daarna (Awb 4:13)."))


class TrajectView(PortalModel):
    startdatum: date | None = Field(default=None, description="Geplande startdatum van het traject.")
    einddatum: date | None = Field(default=None, description="Geplande einddatum (na een verlenging: de nieuwe).")
    verlenging_maanden: int | None = Field(default=None, description="De verleende verlenging, in maanden.")
    verlenging_beschikking_id: str | None = None


class AanvraagDetail(PortalModel):
    id: str
    status: str
    client_referentie: str | None = Field(default=None, description="Alleen voor de indienende ggz-instelling.")
    aanvraagdatum: date
    gewenste_startdatum: date
    ontvangen_op: datetime
    volledig_ontvangen_op: datetime | None = None
    aangevuld_op: datetime | None = None
    ingetrokken_op: datetime | None = None
    gemeente_code: str
    woongemeente_code: str
    doorgezonden_van: str | None = None
    doorgezonden_naar: str | None = Field(default=None, description=(
        "Alleen voor de gemeente die de aanvraag heeft doorgezonden (Awb 2:3): aan welke gemeente. Zij ziet "
        "dan alleen haar eigen dossier van de doorzending (status doorgezonden, de mededeling), niet wat daarna "
        "gebeurde."))
    traject_type: str
    ggz_kvk_nummer: str
    herstel: HerstelView | None = None
    beslistermijn: BeslistermijnView | None = None
    traject: TrajectView | None = None
    besluit: BesluitView | None = Field(default=None, description=(
        "Het besluit op de aanvraag: soort, beschikkingId (GET grants /beschikkingen/{id}), de gronden van een "
        "afwijzing en de brief (notificaties /brieven/{beschikkingId})."))
    vaststelling: BesluitView | None = None
    beschikkingen: list[BesluitView] = Field(default_factory=list, description="Alle brieven, oudste eerst.")
    verlengingsverzoeken: list[VerlengingsverzoekView] = Field(default_factory=list)
    stopbericht: StopberichtView | None = None
    eindverslag_document_id: str | None = None
    documenten: list[DocumentMetadata] = Field(default_factory=list)


class AanvraagSamenvatting(PortalModel):
    id: str
    status: str
    client_referentie: str | None = None
    aanvraagdatum: date
    ontvangen_op: datetime
    gemeente_code: str
    woongemeente_code: str
    traject_type: str
    doorgezonden_naar: str | None = Field(default=None, description="Zie AanvraagDetail.doorgezondenNaar.")
    beslisdatum: date | None = None
    te_laat: bool | None = None
    beschikking_id: str | None = Field(default=None, description="Het besluit op de aanvraag.")
    einddatum: date | None = Field(default=None, description="Geplande einddatum van het traject.")


class AanvraagLijst(PortalModel):
    items: list[AanvraagSamenvatting]
    limit: int
    offset: int


# --- engine command parameters (snake_case as named in the BPMN; elementId/attempt and the rest ignored) ---

class CommandParams(BaseModel):
    model_config = ConfigDict(extra="ignore")

    aanvraag_id: str = Field(min_length=1, max_length=200)


class HerstelVragenParams(CommandParams):
    ontbrekend: list[Any] = Field(default_factory=list)
    hersteltermijn: str = "P14D"

    @field_validator("hersteltermijn")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not is_duur(value):
            raise ValueError("hersteltermijn is geen ISO 8601-duur zoals P14D")
        return value


class DoorzendenParams(CommandParams):
    naar_gemeente_code: str = Field(pattern=CBS_CODE)
    mededeling: dict[str, Any] | None = None


class VolledigheidParams(CommandParams):
    #: The decision date the engine has now (grants' beslisdatum, Awb 4:15 applied) and the suspended days.
    beslisdatum: date | None = None
    opgeschorte_dagen: int | None = Field(default=None, ge=0, le=10_000)


class BesluitRegistrerenParams(CommandParams):
    status: Literal["toegekend", "afgewezen", "niet_behandeld", "vastgesteld"] | None = None
    beschikking: dict[str, Any]
    #: With the grant: the trajectory's planned start and end (start + looptijd)
    startdatum: date | None = None
    einddatum: date | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _no_status(cls, value: Any) -> Any:
        # "keep the status" may arrive as a rendered None from a str-typed BPMN parameter
        return None if value in ("", "None", "null") else value
