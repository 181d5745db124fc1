"""Wire contracts of the intake service: the portal's JSON (camelCase) and the events it publishes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

AANVRAAG_INGEDIEND = "ips.aanvraag.ingediend.v1"


class PortalModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              str_strip_whitespace=True)


class AanvraagIndienen(PortalModel):
    """A subsidy application for one IPS trajectory, as a ggz-instelling submits it.

    The client is identified by the ggz's own pseudonymous reference; fields the regulation does not need
    (nationality, address, gender, diagnosis) are not part of the contract and are refused as unknown.
    """

    client_referentie: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$",
                                   description="Pseudoniem kenmerk van de kandidaat bij de ggz-instelling.")
    gemeente_code: str = Field(pattern=r"^[0-9]{4}$", description="CBS-gemeentecode van de woongemeente.")
    traject_type: Literal["CMD", "EPA"]
    gewenste_startdatum: date
    ggz_kvk_nummer: str = Field(pattern=r"^[0-9]{8}$")
    toelichting: str | None = Field(default=None, max_length=2000)


class AanvraagOntvangen(PortalModel):
    id: str
    status: str
    ontvangen_op: datetime
    gemeente_code: str
    traject_type: str
