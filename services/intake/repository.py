"""Hand-written mapping between the Aanvraag aggregate and its MongoDB document (collection ``aanvragen``)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from intake.domain import Aanvraag
from servicekit.broker import EVENTS
from servicekit.envelope import new_event
from servicekit.store import Document, DocumentStore

SERVICE = "intake"


class AanvraagRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.store = DocumentStore(db, "aanvragen")

    @property
    def collection(self) -> Any:
        return self.store.collection

    async def ensure_indexes(self) -> None:
        await self.collection.create_index("has_outbox")

    async def add(self, aanvraag: Aanvraag, request_hash: str) -> Document:
        """Insert the application with its events in the outbox, in one write. Raises DuplicateKeyError."""
        events = [(new_event(e.type, service=SERVICE, subject=aanvraag.id, data=e.data), EVENTS)
                  for e in aanvraag.events]
        aanvraag.events.clear()
        return await self.store.insert({**_to_doc(aanvraag), "request_hash": request_hash}, events)

    async def get(self, aanvraag_id: str) -> Aanvraag | None:
        doc = await self.store.get(aanvraag_id)
        return _from_doc(doc) if doc else None

    async def get_document(self, aanvraag_id: str) -> Document | None:
        return await self.store.get(aanvraag_id)


def _to_doc(a: Aanvraag) -> Document:
    return {
        "_id": a.id,
        "client_referentie": a.client_referentie,
        "gemeente_code": a.gemeente_code,
        "traject_type": a.traject_type,
        "gewenste_startdatum": a.gewenste_startdatum.isoformat(),
        "ggz_kvk_nummer": a.ggz_kvk_nummer,
        "ontvangen_op": a.ontvangen_op,
        "status": a.status,
        "toelichting": a.toelichting,
    }


def _from_doc(doc: Document) -> Aanvraag:
    return Aanvraag(
        id=doc["_id"],
        client_referentie=doc["client_referentie"],
        gemeente_code=doc["gemeente_code"],
        traject_type=doc["traject_type"],
        gewenste_startdatum=date.fromisoformat(doc["gewenste_startdatum"]),
        ggz_kvk_nummer=doc["ggz_kvk_nummer"],
        ontvangen_op=doc["ontvangen_op"],
        status=doc["status"],
        toelichting=doc.get("toelichting"),
    )
