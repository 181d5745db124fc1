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
from servicekit.broker import COMMANDS, Binding
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


class GrantsSettings(ServiceSettings):
    service_name: str = "grants"
    http_port: int = 8002
    regelingen_dir: Path = REGELINGEN_DIR
    # How long a reservation request settles before it is decided (order of receipt, see allocator.py).
    grants_verdeelvenster_seconds: float = Field(default=2.0, ge=0)  # IPSFLOW_GRANTS_VERDEELVENSTER_SECONDS
    allocator_interval_seconds: float = Field(default=0.5, gt=0)


@dataclass
class Grants:
    settings: GrantsSettings
    runtime: ServiceRuntime
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
    routes = {TOETSEN: handlers.toetsen, RESERVEREN: handlers.reserveren, VASTLEGGEN: handlers.vastleggen,
              VRIJGEVEN: handlers.vrijgeven, BESCHIKKING_OPSTELLEN: handlers.beschikking_opstellen,
              VERLENGING_TOETSEN: handlers.verlenging_toetsen, VASTSTELLING_BEREKENEN: handlers.vaststelling_berekenen,
              FINANCIEEL_REGISTREREN: handlers.financieel_registreren}
    runtime.add_consumer(QUEUE, routes, [Binding(COMMANDS, t) for t in routes])
    allocator = Allocator(repo, handlers, settings.grants_verdeelvenster_seconds, settings.allocator_interval_seconds)
    return Grants(settings, runtime, repo, regelingen, handlers, allocator)
