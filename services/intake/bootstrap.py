"""Composition root of intake: builds everything from settings; nothing is created at import."""

from __future__ import annotations

from dataclasses import dataclass

from intake.repository import AanvraagRepository
from servicekit.runtime import ServiceRuntime
from servicekit.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    service_name: str = "intake"
    http_port: int = 8001


@dataclass
class Intake:
    runtime: ServiceRuntime
    aanvragen: AanvraagRepository


def bootstrap(settings: IntakeSettings | None = None) -> Intake:
    settings = settings or IntakeSettings()
    runtime = ServiceRuntime(settings)
    aanvragen = AanvraagRepository(runtime.db)
    runtime.add_relay([aanvragen.collection])
    return Intake(runtime=runtime, aanvragen=aanvragen)
