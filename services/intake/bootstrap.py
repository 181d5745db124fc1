"""Composition root of intake: builds everything from settings; nothing is created at import."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import structlog
from pydantic import Field

from intake.bsn import BsnCipher, load_key
from intake.domain import Gemeenteregister
from intake.handlers import IntakeHandlers
from intake.opdrachten import IntakeCommands
from intake.repository import AanvraagRepository, DocumentContents, millis
from servicekit.bootstrap import Service, compose, consume
from servicekit.clock import EX_CONFIG
from servicekit.logging import configure_logging
from servicekit.settings import ServiceSettings

QUEUE = "intake"
VOLLEDIGHEID_CONTROLEREN = "ips.aanvraag.volledigheid_controleren.v1"
HERSTEL_VRAGEN = "ips.aanvraag.herstel_vragen.v1"
DOORZENDEN = "ips.aanvraag.doorzenden.v1"
BESLUIT_REGISTREREN = "ips.aanvraag.besluit_registreren.v1"
GEMEENTEN_CSV = Path(__file__).parent / "data" / "gemeenten.csv"


class IntakeSettings(ServiceSettings):
    service_name: str = "intake"
    http_port: int = 8001
    # IPSFLOW_INTAKE_BSN_KEY: base64 of 32 bytes; empty means the development key in .local/dev-keys.
    intake_bsn_key: str = Field(default="", repr=False)
    max_document_bytes: int = Field(default=10 * 1024 * 1024, ge=1, le=15 * 1024 * 1024)
    #: Uploads an application needs to be complete (IPSFLOW_INTAKE_VEREISTE_BIJLAGEN='["aanvraagformulier"]').
    intake_vereiste_bijlagen: list[str] = Field(default_factory=list)
    #: Uploaded documents per application (IPSFLOW_INTAKE_MAX_DOCUMENTS); the next upload is 409.
    intake_max_documents: int = Field(default=20, ge=1, le=1000)


def bsn_key(settings: IntakeSettings) -> bytes:
    """The key that encrypts BSNs at rest. Outside development a missing key stops the start (exit 78, one log
    line) instead of falling back to a development key that would sit next to the data it protects."""
    if not settings.intake_bsn_key and settings.environment != "development":
        reason = ("IPSFLOW_INTAKE_BSN_KEY is not set; outside IPSFLOW_ENVIRONMENT=development intake needs a real "
                  "key (base64 of 32 bytes, from a secret store)")
        configure_logging(settings.service_name, settings.log_level)
        structlog.get_logger("intake").error("service.refused", reason=reason, setting="intake_bsn_key",
                                             environment=settings.environment)
        raise SystemExit(EX_CONFIG)
    return load_key(settings.intake_bsn_key)


@dataclass
class Intake(Service[IntakeSettings]):
    aanvragen: AanvraagRepository
    documenten: DocumentContents
    handlers: IntakeHandlers
    commands: IntakeCommands


def bootstrap(settings: IntakeSettings | None = None) -> Intake:
    settings, runtime = compose(settings, IntakeSettings)
    aanvragen = AanvraagRepository(runtime.db)
    documenten = DocumentContents(runtime.db)
    relay = runtime.add_relay([aanvragen.collection])
    gemeenten = Gemeenteregister.from_csv(GEMEENTEN_CSV.read_text(encoding="utf-8"))

    handlers = IntakeHandlers(
        aanvragen=aanvragen, documenten=documenten, gemeenten=gemeenten, cipher=BsnCipher(bsn_key(settings)),
        max_document_bytes=settings.max_document_bytes, max_documenten=settings.intake_max_documents, wake=relay.wake,
        vereiste_bijlagen=tuple(settings.intake_vereiste_bijlagen),
        # Receipt dates and every other date intake stamps follow the service clock (the rehearsal clock in test).
        clock=lambda: millis(runtime.clock()),
    )
    commands = IntakeCommands(aanvragen=aanvragen, gemeenten=gemeenten,
                              vereiste_bijlagen=tuple(settings.intake_vereiste_bijlagen), wake=relay.wake)
    consume(runtime, QUEUE, {
        VOLLEDIGHEID_CONTROLEREN: commands.volledigheid_controleren,
        HERSTEL_VRAGEN: commands.herstel_vragen,
        DOORZENDEN: commands.doorzenden,
        BESLUIT_REGISTREREN: commands.besluit_registreren,
    })
    return Intake(runtime=runtime, aanvragen=aanvragen, documenten=documenten, handlers=handlers, settings=settings,
                  commands=commands)
