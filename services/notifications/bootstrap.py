"""Composition root of notifications."""

from __future__ import annotations

from dataclasses import dataclass

from notifications.handlers import NotificationHandlers
from servicekit.broker import EVENTS, Binding
from servicekit.runtime import ServiceRuntime
from servicekit.settings import ServiceSettings

QUEUE = "notifications"
AANVRAAG_INGEDIEND = "ips.aanvraag.ingediend.v1"


class NotificationSettings(ServiceSettings):
    service_name: str = "notifications"
    http_port: int = 8004


@dataclass
class Notifications:
    runtime: ServiceRuntime
    handlers: NotificationHandlers


def bootstrap(settings: NotificationSettings | None = None) -> Notifications:
    settings = settings or NotificationSettings()
    runtime = ServiceRuntime(settings)
    handlers = NotificationHandlers(runtime.db)
    runtime.add_consumer(QUEUE, {AANVRAAG_INGEDIEND: handlers.aanvraag_ingediend},
                         [Binding(EVENTS, AANVRAAG_INGEDIEND)])
    return Notifications(runtime=runtime, handlers=handlers)
