"""MongoDB through PyMongo's AsyncMongoClient: revision-checked documents with an embedded outbox.

Rules (docs/adr/0002-embedded-outbox-and-idempotent-consumers.md): no multi-document transactions. A state
change and the events it causes are one single-document write: the events sit in the document's ``outbox`` array
until the relay has published them.
Every document carries ``revision``; writes filter on it, and a miss means someone else wrote first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from servicekit.envelope import CloudEvent
from servicekit.settings import ServiceSettings

Document = dict[str, Any]

__all__ = ["ConcurrencyError", "DocumentStore", "DuplicateKeyError", "make_client", "outbox_entry"]


class ConcurrencyError(Exception):
    """The document changed since it was read (revision mismatch): reload and retry."""


def make_client(settings: ServiceSettings) -> AsyncMongoClient[Document]:
    """A client per process; nothing connects until the first operation."""
    options: dict[str, Any] = {} if settings.mongo_pool_size is None else {"maxPoolSize": settings.mongo_pool_size}
    if settings.mongo_replica_set is not None:
        options["replicaSet"] = settings.mongo_replica_set
    if settings.mongo_write_concern is not None:
        w = settings.mongo_write_concern
        options["w"] = int(w) if w.isdigit() else w
    if settings.mongo_retry_writes is not None:
        options["retryWrites"] = settings.mongo_retry_writes
    return AsyncMongoClient(settings.mongo_url, tz_aware=True, serverSelectionTimeoutMS=5_000,
                            appname=f"ipsflow-{settings.service_name}", **options)


def outbox_entry(event: CloudEvent, exchange: str) -> Document:
    """How an event waits in a document's outbox: the exact bytes to publish and where to."""
    return {"id": event.id, "exchange": exchange, "routing_key": event.type, "body": event.to_json().decode()}


class DocumentStore:
    """Revision-checked access to one collection. Documents are plain dicts; services map them."""

    def __init__(self, database: AsyncDatabase[Document], collection: str) -> None:
        self.collection: AsyncCollection[Document] = database[collection]

    async def get(self, doc_id: str) -> Document | None:
        return await self.collection.find_one({"_id": doc_id})

    async def insert(self, doc: Document, events: Sequence[tuple[CloudEvent, str]] = ()) -> Document:
        """Insert a new document at revision 1 with its events in the outbox. Raises DuplicateKeyError."""
        stored = {**doc, "revision": 1}
        _attach_outbox(stored, events)
        await self.collection.insert_one(stored)
        return stored

    async def replace(self, doc: Document, events: Sequence[tuple[CloudEvent, str]] = ()) -> Document:
        """Write ``doc`` if nobody wrote since it was read at ``doc['revision']``; append ``events``.

        Raises ConcurrencyError on a revision miss; the caller reloads, re-applies and retries.
        """
        expected = doc["revision"]
        stored = {**doc, "revision": expected + 1}
        _attach_outbox(stored, events)
        result = await self.collection.replace_one({"_id": doc["_id"], "revision": expected}, stored)
        if result.matched_count != 1:
            raise ConcurrencyError(f"{self.collection.name}/{doc['_id']} changed since revision {expected}")
        return stored

    async def update(self, doc: Document, fields: Sequence[str],
                     events: Sequence[tuple[CloudEvent, str]] = ()) -> Document:
        """Write only ``fields`` of ``doc`` (and ``events``) if nobody wrote since it was read at ``doc['revision']``.

        The document's other fields keep what the database holds, also a field someone changed since without
        raising the revision (a ``$max`` beside a revision-checked field). Returns ``doc`` as written (its other
        fields as read). Raises ConcurrencyError on a revision miss.
        """
        expected = doc["revision"]
        stored = {**doc, "revision": expected + 1}
        change = {field: stored[field] for field in fields}
        change["revision"] = expected + 1
        if events:
            _attach_outbox(stored, events)
            change.update(outbox=stored["outbox"], has_outbox=stored["has_outbox"])
        result = await self.collection.update_one({"_id": doc["_id"], "revision": expected}, {"$set": change})
        if result.matched_count != 1:
            raise ConcurrencyError(f"{self.collection.name}/{doc['_id']} changed since revision {expected}")
        return stored


def _attach_outbox(doc: Document, events: Sequence[tuple[CloudEvent, str]]) -> None:
    outbox = list(doc.get("outbox") or [])
    outbox.extend(outbox_entry(event, exchange) for event, exchange in events)
    doc["outbox"] = outbox
    doc["has_outbox"] = bool(outbox)
