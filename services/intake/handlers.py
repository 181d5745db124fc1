"""Use cases of intake, shared by every entry point."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from intake.domain import Aanvraag
from intake.messages import AanvraagIndienen
from intake.repository import AanvraagRepository
from servicekit.store import DuplicateKeyError


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before for a different request body."""


@dataclass
class Submitted:
    aanvraag: Aanvraag
    created: bool


async def submit_application(cmd: AanvraagIndienen, repo: AanvraagRepository,
                             idempotency_key: str | None, now: datetime | None = None) -> Submitted:
    """Store a new application and its ``ingediend`` event in one write.

    Idempotent per (ggz, Idempotency-Key): the key fixes the application id, so a retried POST finds the
    stored application instead of creating a second one. Without a key every call is a new application.
    """
    request_hash = hashlib.sha256(cmd.model_dump_json().encode()).hexdigest()
    if idempotency_key:
        aanvraag_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"ipsflow:aanvraag:{cmd.ggz_kvk_nummer}:{idempotency_key}"))
    else:
        aanvraag_id = str(uuid.uuid4())
    aanvraag = Aanvraag.indienen(
        id=aanvraag_id, client_referentie=cmd.client_referentie, gemeente_code=cmd.gemeente_code,
        traject_type=cmd.traject_type, gewenste_startdatum=cmd.gewenste_startdatum,
        ggz_kvk_nummer=cmd.ggz_kvk_nummer, ontvangen_op=now or datetime.now(UTC), toelichting=cmd.toelichting,
    )
    try:
        await repo.add(aanvraag, request_hash)
    except DuplicateKeyError:
        existing = await repo.get_document(aanvraag_id)
        if existing is None or existing.get("request_hash") != request_hash:
            raise IdempotencyConflict(aanvraag_id) from None
        stored = await repo.get(aanvraag_id)
        assert stored is not None
        return Submitted(stored, created=False)
    return Submitted(aanvraag, created=True)
