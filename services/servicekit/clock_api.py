"""``GET /api/v1/beheer/klok`` on every service: the time it works with and whether that time can be moved.

A rehearsal is only trustworthy when every service shows the same time; ``ipsflow klok set`` asks each one.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from servicekit.auth import Principal, PrincipalDep, forbid
from servicekit.clock import Clock
from servicekit.http import API_PREFIX

CLOCK_PATH = f"{API_PREFIX}/beheer/klok"


class KlokView(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    nu: datetime = Field(description="De tijd waarmee deze service nu werkt (UTC).")
    verschuiving_seconden: float = Field(description="Hoeveel seconden de klok voorloopt (negatief: achterloopt).")
    verstelbaar: bool = Field(description="Of functioneel beheer de klok mag verzetten (alleen test en opleiding).")
    gezet_op: datetime | None = Field(default=None, description="Wanneer (echte tijd) de klok het laatst is verzet.")


def klok_view(clock: Clock) -> KlokView:
    state = clock.state
    return KlokView(nu=clock(), verschuiving_seconden=state.offset.total_seconds(), verstelbaar=clock.adjustable,
                    gezet_op=state.set_at)


def require_clock_admin(principal: Principal) -> None:
    """Functional administration only: the clock says nothing about cases, but moving it moves every deadline."""
    if principal.org_type != "beheer":
        raise forbid("Alleen functioneel beheer mag de klok inzien of verzetten.")


def add_clock_route(app: FastAPI, clock: Clock) -> None:
    @app.get(CLOCK_PATH, tags=["beheer"], response_model=KlokView, response_model_by_alias=True)
    async def klok(principal: PrincipalDep) -> KlokView:
        """De tijd van deze service. Verstelbaar alleen in test- en opleidingsomgevingen
        (IPSFLOW_ADJUSTABLE_CLOCK=true); de klok wordt voor alle services tegelijk gezet via de process engine."""
        require_clock_admin(principal)
        return klok_view(clock)
