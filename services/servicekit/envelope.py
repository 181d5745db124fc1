"""The CloudEvents 1.0 envelope, structured JSON, after the NL GOV profile.

``id`` is also the AMQP message_id and the de-duplication key of every consumer. ``subject`` is the case id
and never personal data; ``data`` is informatiearm: ids and facts only.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from servicekit import tracing

CONTENT_TYPE = "application/cloudevents+json"


def source_for(service: str) -> str:
    return f"urn:nld:oin:00000001003214345000:systeem:ipsflow-{service}"


class CloudEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: str = Field(default="1.0", pattern=r"^1\.0$")
    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=500)
    type: str = Field(min_length=3, max_length=200, pattern=r"^[a-z0-9_.-]+\.v[0-9]+$")
    subject: str | None = Field(default=None, max_length=200)
    time: datetime
    datacontenttype: str = "application/json"
    data: dict[str, Any] = Field(default_factory=dict)
    correlationid: str | None = None
    causationid: str | None = None
    #: W3C trace context (the CloudEvents distributed-tracing extension): random ids only (servicekit.tracing).
    #: Not checked here: a malformed one starts a new trace instead of parking the message.
    traceparent: str | None = Field(default=None, max_length=100)

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> CloudEvent:
        return cls.model_validate_json(raw)


def new_event(
    type: str,
    *,
    service: str,
    subject: str | None,
    data: dict[str, Any] | None = None,
    caused_by: CloudEvent | None = None,
    event_id: str | None = None,
    now: datetime | None = None,
) -> CloudEvent:
    """Build an event or command; ``caused_by`` carries the correlation id on and sets the causation id.

    A deterministic ``event_id`` makes a re-run of the same step produce the same message, so consumers
    drop the duplicate.
    """
    eid = event_id or str(uuid.uuid4())
    return CloudEvent(
        id=eid,
        source=source_for(service),
        type=type,
        subject=subject,
        time=now or datetime.now(UTC),
        data=data or {},
        correlationid=(caused_by.correlationid or caused_by.id) if caused_by else eid,
        causationid=caused_by.id if caused_by else None,
        traceparent=tracing.outgoing(caused_by.traceparent if caused_by else None),
    )


def deterministic_id(*parts: str) -> str:
    """A stable message id from the parts (uuid5), for commands a retried step must not duplicate."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "ipsflow:" + ":".join(parts)))
