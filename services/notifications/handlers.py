"""Message handlers of notifications.

For now notifications records every application it hears of in ``dossiers`` (one document per case). The
message id goes into the same single-document update as the effect, so a redelivery changes nothing.
"""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from servicekit.envelope import CloudEvent
from servicekit.logging import get_logger
from servicekit.store import Document, DuplicateKeyError

log = get_logger(__name__)


class NotificationHandlers:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.dossiers = db["dossiers"]

    async def aanvraag_ingediend(self, event: CloudEvent) -> None:
        """Record the application once per message id. Idempotent: the filter excludes applied ids."""
        if not event.subject:
            from servicekit.consumer import PoisonMessage

            raise PoisonMessage("event without subject (case id)")
        try:
            await self.dossiers.update_one(
                {"_id": event.subject, "applied": {"$ne": event.id}},
                {"$push": {"applied": event.id},
                 "$inc": {"berichten": 1},
                 "$set": {"gemeente_code": event.data.get("gemeenteCode"),
                          "traject_type": event.data.get("trajectType"),
                          "laatste_bericht": event.type}},
                upsert=True,
            )
        except DuplicateKeyError:
            # The document exists and already holds this message id: a redelivery, nothing to do.
            log.info("message.duplicate")
            return
        log.info("dossier.recorded")
