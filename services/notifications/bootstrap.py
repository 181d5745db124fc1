"""Composition root of notifications: builds everything from settings; nothing connects at import."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from notifications.domain import DATA_DIR, TEMPLATES_DIR, Contacten, Herhaalschema
from notifications.handlers import NotificationHandlers
from notifications.letter import Lettertype
from notifications.mailer import SmtpConfig
from notifications.repository import BerichtenRepository
from notifications.sender import Sender
from notifications.sjablonen import Sjablonen
from servicekit.bootstrap import Service, consume
from servicekit.runtime import ServiceRuntime
from servicekit.settings import ServiceSettings

QUEUE = "notifications"
AANVRAAG_INGEDIEND = "ips.aanvraag.ingediend.v1"
BERICHT_VERSTUREN = "ips.bericht.versturen.v1"


class NotificationSettings(ServiceSettings):
    service_name: str = "notifications"
    http_port: int = 8004
    # IPSFLOW_SMTP_*: the mail server. Nothing listening means every attempt fails and is retried.
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_user: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_starttls: bool = False
    smtp_from: str = "IPS-subsidies <noreply@ipsflow.example>"
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    # Waits after the 1st, 2nd, ... failed attempt; the last one repeats until smtp_max_pogingen attempts.
    smtp_backoff_seconds: list[float] = Field(default_factory=lambda: [5.0, 30.0, 120.0, 600.0, 1800.0],
                                              min_length=1)
    smtp_max_pogingen: int = Field(default=20, ge=1)
    # A claimed message is taken over by another sender only after its lease ends (see sender.py).
    smtp_lease_seconds: float = Field(default=300.0, gt=0)
    smtp_parallel: int = Field(default=4, ge=1, le=32)
    sender_poll_seconds: float = Field(default=2.0, gt=0)
    # How often the sender scans berichten for due messages it does not know of (sender.py): each scan decodes
    # every stored message on FerretDB v1.
    sender_scan_seconds: float = Field(default=30.0, gt=0)
    notifications_contacten: Path = DATA_DIR / "contacten.json"  # IPSFLOW_NOTIFICATIONS_CONTACTEN
    notifications_gemeenten: Path = DATA_DIR / "gemeenten.csv"
    notifications_templates: Path = TEMPLATES_DIR
    # The letter font (a Unicode TrueType font, embedded in every PDF); the service does not start without it.
    notifications_lettertype: Path = Lettertype.normaal
    notifications_lettertype_vet: Path = Lettertype.vet

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> NotificationSettings:
        if self.smtp_lease_seconds < 2 * self.smtp_timeout_seconds:
            raise ValueError("smtp_lease_seconds must be at least twice smtp_timeout_seconds")
        return self


@dataclass
class Notifications(Service[NotificationSettings]):
    repo: BerichtenRepository
    handlers: NotificationHandlers
    sender: Sender


def bootstrap(settings: NotificationSettings | None = None) -> Notifications:
    settings = settings or NotificationSettings()
    # First: without its font the service could not write one letter correctly (LettertypeOntbreekt).
    lettertype = Lettertype(settings.notifications_lettertype, settings.notifications_lettertype_vet).laad()
    runtime = ServiceRuntime(settings)
    repo = BerichtenRepository(runtime.db)
    relay = runtime.add_relay([repo.collection])
    afzender = parseaddr(settings.smtp_from)[1] or settings.smtp_from
    sender = Sender(
        repo,
        SmtpConfig(host=settings.smtp_host, port=settings.smtp_port, user=settings.smtp_user,
                   password=settings.smtp_password.get_secret_value(), starttls=settings.smtp_starttls,
                   afzender=settings.smtp_from, timeout=settings.smtp_timeout_seconds),
        Herhaalschema(settings.smtp_backoff_seconds, settings.smtp_max_pogingen),
        lease_seconds=settings.smtp_lease_seconds, poll_seconds=settings.sender_poll_seconds,
        scan_seconds=settings.sender_scan_seconds, parallel=settings.smtp_parallel,
        message_id_domain=afzender.rpartition("@")[2] or "ipsflow.example")
    handlers = NotificationHandlers(
        runtime.db, repo,
        laad_contacten=lambda: Contacten.load(settings.notifications_contacten, settings.notifications_gemeenten),
        sjablonen=Sjablonen(settings.notifications_templates), wake_relay=relay.wake, wake_sender=sender.wake,
        lettertype=lettertype)
    consume(runtime, QUEUE, {BERICHT_VERSTUREN: handlers.bericht_versturen},
            events={AANVRAAG_INGEDIEND: handlers.aanvraag_ingediend})
    return Notifications(settings=settings, runtime=runtime, repo=repo, handlers=handlers, sender=sender)
