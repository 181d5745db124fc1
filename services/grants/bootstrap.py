"""Composition root of grants: builds everything from settings; nothing is created at import."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from grants.allocator import Allocator
from grants.domain import Regeling
from grants.handlers import GrantsHandlers
from grants.regelingen import REGELINGEN_DIR, load_gemeenten, load_regelingen
from grants.repository import GrantsRepository
from servicekit.bootstrap import Service, consume
from servicekit.runtime import ServiceRuntime
from servicekit.settings import ServiceSettings

QUEUE = "grants"
TOETSEN = "ips.aanvraag.toetsen.v1"
RESERVEREN = "ips.budget.reserveren.v1"
VASTLEGGEN = "ips.budget.vastleggen.v1"
VRIJGEVEN = "ips.budget.vrijgeven.v1"
BESCHIKKING_OPSTELLEN = "ips.beschikking.opstellen.v1"
VERLENGING_TOETSEN = "ips.traject.verlenging_toetsen.v1"
VASTSTELLING_BEREKENEN = "ips.vaststelling.berekenen.v1"
FINANCIEEL_REGISTREREN = "ips.budget.financieel_registreren.v1"
# intake's events the order of receipt needs (allocator.py)
VOLGNUMMER_TOEGEKEND = "ips.aanvraag.volgnummer_toegekend.v1"
INGETROKKEN = "ips.aanvraag.ingetrokken.v1"


class GrantsSettings(ServiceSettings):
    service_name: str = "grants"
    http_port: int = 8002
    regelingen_dir: Path = REGELINGEN_DIR
    # The order of receipt (allocator.py) has no time window. A number intake took but never announced is
    # skipped after this long (IPSFLOW_GRANTS_VOLGNUMMER_GAT_SECONDS), an announced number whose request does
    # not come (a case stuck in an incident, or cancelled) after this long (..._STILSTAND_SECONDS).
    grants_volgnummer_gat_seconds: float = Field(default=30.0, gt=0)
    grants_volgnummer_stilstand_seconds: float = Field(default=300.0, gt=0)
    # How often the allocator looks without being woken (for the two bounds above and the other process).
    allocator_interval_seconds: float = Field(default=0.5, gt=0)


@dataclass
class Grants(Service[GrantsSettings]):
    repo: GrantsRepository
    regelingen: dict[str, Regeling]
    handlers: GrantsHandlers
    allocator: Allocator


def bootstrap(settings: GrantsSettings | None = None) -> Grants:
    settings = settings or GrantsSettings()
    regelingen = load_regelingen(settings.regelingen_dir)
    runtime = ServiceRuntime(settings)
    repo = GrantsRepository(runtime.db)
    relay = runtime.add_relay([repo.zaken.collection, repo.verzoeken.collection])
    handlers = GrantsHandlers(repo, regelingen, load_gemeenten(), wake=relay.wake, clock=runtime.clock)
    consume(runtime, QUEUE, {
        TOETSEN: handlers.toetsen, RESERVEREN: handlers.reserveringen.reserveren, VASTLEGGEN: handlers.vastleggen,
        VRIJGEVEN: handlers.vrijgeven, BESCHIKKING_OPSTELLEN: handlers.beschikking_opstellen,
        VERLENGING_TOETSEN: handlers.verlenging_toetsen, VASTSTELLING_BEREKENEN: handlers.vaststelling_berekenen,
        FINANCIEEL_REGISTREREN: handlers.financieel_registreren,
    }, events={VOLGNUMMER_TOEGEKEND: handlers.reserveringen.volgnummer_toegekend,
               INGETROKKEN: handlers.reserveringen.ingetrokken})
    allocator = Allocator(repo, handlers.reserveringen, interval=settings.allocator_interval_seconds,
                          gat_seconds=settings.grants_volgnummer_gat_seconds,
                          stilstand_seconds=settings.grants_volgnummer_stilstand_seconds)
    handlers.reserveringen.volgorde_wakker = allocator.wake
    return Grants(settings, runtime, repo, regelingen, handlers, allocator)
