"""MongoDB through PyMongo's AsyncMongoClient: revision-checked documents with an embedded outbox.

Rules (docs/adr/0002-embedded-outbox-and-idempotent-consumers.md): no multi-document transactions. A state
change and the events it causes are one single-document write: the events sit in the document's ``outbox`` array
until the relay has published them.
Every document carries ``revision``; writes filter on it, and a miss means someone else wrote first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bson import BSON, Binary
from bson.codec_options import CodecOptions
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from servicekit.envelope import CloudEvent
from servicekit.settings import ServiceSettings

Document = dict[str, Any]

__all__ = ["PUBLISHED", "ConcurrencyError", "DocumentStore", "DuplicateKeyError", "Packing", "Published", "make_client",
           "nested", "outbox_entry"]


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


@dataclass(slots=True)
class _Owed:
    """A clear the relay owes: the published entries ``ids`` of ``doc`` (as last known), removed at ``due``, and
    ``fields`` to set in the same statement (bookkeeping of that revision that leaves the revision alone, such as
    the engine's read-model mark), both checked on ``doc``'s revision."""

    collection: AsyncCollection[Document]
    doc: Document
    ids: set[str]
    due: float
    fields: dict[str, Any] = field(default_factory=dict)


class Published:
    """The events the broker confirmed to this process's relay, and the outbox clears the relay still owes.

    Clearing an outbox right after publishing was a second write after every write with events (issue 14.3: 17
    of 67 writes per case). Now the relay owes the clear for a short while (``relay_clear_after_seconds``); a
    store that writes the document meanwhile leaves the confirmed entries out of what it writes (they ride along
    that write) and so settles the debt; only what is still owed when it falls due costs a clear of its own.
    Confirmed means the broker has the event, so dropping the entry keeps at-least-once. Another process's
    relay (a replica) confirms what this store does not know: those entries stay and that relay clears them.
    """

    def __init__(self, kept: int = 20_000) -> None:
        #: How many confirmed event ids are remembered (about 100 bytes each), oldest first. Entries come back
        #: into an outbox within the time of one write (a writer that read before the clear), a stale handed-over
        #: copy within one relay round.
        self.kept = kept
        # Per collection and document, not by event id alone: one process may hold several databases (tests
        # do, with fixed event ids), and an entry is only ever dropped from the document it was published from.
        self._ids: dict[tuple[str, object, str], None] = {}
        self._owed: dict[tuple[str, object], _Owed] = {}
        #: Set by the running relay (``attach``): wakes it when a clear is owed, and how long a clear waits.
        self.wake: Callable[[], None] | None = None
        self.clear_after = 0.0

    def attach(self, wake: Callable[[], None], clear_after: float) -> None:
        self.wake, self.clear_after = wake, clear_after

    def detach(self) -> None:
        self.wake = None

    def remember(self, collection: AsyncCollection[Document], doc_id: object, event_id: str) -> None:
        self._ids[(collection.full_name, doc_id, event_id)] = None
        if len(self._ids) > self.kept:
            del self._ids[next(iter(self._ids))]

    def confirmed(self, collection: AsyncCollection[Document], doc_id: object, event_id: str) -> bool:
        return (collection.full_name, doc_id, event_id) in self._ids

    def unpublished(self, collection: AsyncCollection[Document], doc: Document) -> bool:
        """Whether ``doc``'s outbox holds an event the broker has not confirmed to this process."""
        return any(not self.confirmed(collection, doc["_id"], entry["id"]) for entry in doc.get("outbox") or [])

    def owe(self, collection: AsyncCollection[Document], doc: Document, ids: set[str], due: float | None = None,
            fields: dict[str, Any] | None = None) -> None:
        """The relay published ``ids`` of ``doc``: remove them at ``due`` (None: ``clear_after`` from now) unless a
        write of it does so first; ``fields``: set these with it (they belong to ``doc``'s revision)."""
        if due is None:
            due = asyncio.get_running_loop().time() + self.clear_after
        key = (collection.full_name, doc["_id"])
        owed = self._owed.get(key)
        if owed is None:
            self._owed[key] = _Owed(collection, doc, set(ids), due, dict(fields or {}))
        else:
            owed.ids |= ids  # the first debt keeps its due time: a document written often is still cleared in time
            if doc["revision"] > owed.doc["revision"]:
                owed.doc, owed.fields = doc, dict(fields or {})  # the older revision's fields are superseded
            elif doc["revision"] == owed.doc["revision"]:
                owed.fields.update(fields or {})
                if "outbox" in doc and "outbox" not in owed.doc:
                    owed.doc = doc  # the clear is computed from the document's outbox: it must be there
        if self.wake is not None:
            self.wake()

    def fields_for(self, collection: AsyncCollection[Document], doc: Document) -> dict[str, Any]:
        """The fields owed for ``doc`` at its revision (a writer takes them along: they then need no write)."""
        owed = self._owed.get((collection.full_name, doc["_id"]))
        return dict(owed.fields) if owed is not None and owed.doc["revision"] == doc["revision"] else {}

    def written(self, collection: AsyncCollection[Document], doc: Document) -> None:
        """A store wrote ``doc``: what it left out of the outbox is no longer owed."""
        key = (collection.full_name, doc["_id"])
        owed = self._owed.get(key)
        if owed is None:
            return
        owed.ids &= {entry["id"] for entry in doc.get("outbox") or []}
        owed.fields = {}  # of an older revision: the new write carries its own
        if owed.ids:
            owed.doc = doc  # put back by a write that started before the confirm: clear it at this revision
        else:
            del self._owed[key]

    def gone(self, collection: AsyncCollection[Document], doc_id: object) -> None:
        """The document was deleted: nothing to clear."""
        self._owed.pop((collection.full_name, doc_id), None)

    def take_due(self, now: float | None) -> list[_Owed]:
        """The clears due by ``now`` (None: all of them), taken out of the ledger."""
        due = [key for key, owed in self._owed.items() if now is None or owed.due <= now]
        return [self._owed.pop(key) for key in due]

    def give_back(self, owed: list[_Owed]) -> None:
        """Clears that could not be done (the database away): owed again, unless written meanwhile."""
        for item in owed:
            self.owe(item.collection, item.doc, item.ids, item.due, item.fields)

    def next_due(self) -> float | None:
        return min((owed.due for owed in self._owed.values()), default=None)

    @property
    def owed(self) -> int:
        return len(self._owed)

    def drop_confirmed(self, collection: AsyncCollection[Document], doc: Document) -> list[Document]:
        """``doc``'s outbox without the entries the broker confirmed."""
        return [entry for entry in doc.get("outbox") or [] if not self.confirmed(collection, doc["_id"], entry["id"])]


#: This process's ledger: its relay records what the broker confirmed, its stores leave that out when they write.
PUBLISHED = Published()


@dataclass(frozen=True)
class Packing:
    """Fields a collection stores together as one BSON document inside a binary field (``into``), for the fields
    no filter, projection or partial update names.

    FerretDB v1 decodes a stored document into its own types value by value, on every read, every write (the
    revision-checked replace reads the old one) and for every document a filtered scan passes: a case's journal,
    history, user tasks and variables were most of that work, while a binary is one value. Measured for issue 14
    on 2,000 instance documents of 8.5 KB: a replace 5.3 -> 1.9 ms, a read by ``_id`` 4.1 -> 1.4 ms, a scan
    3.2 -> 0.7 s. MongoDB gains little either way, and loses nothing a query used.

    Documents written before (without ``into``) read as they are; :meth:`unpack` leaves them alone."""

    fields: frozenset[str]
    into: str = "body"

    def pack(self, doc: Document, options: CodecOptions[Any]) -> Document:
        """``doc`` as stored: its packed fields (those it has) encoded in ``into``."""
        out = {k: v for k, v in doc.items() if k not in self.fields}
        out[self.into] = Binary(BSON.encode({k: doc[k] for k in self.fields if k in doc}, codec_options=options))
        return out

    def unpack(self, doc: Document, options: CodecOptions[Any]) -> Document:
        """``doc`` (changed in place) with the packed fields back in their places; a document without ``into``
        (written before, or a projection without it) is returned unchanged."""
        raw = doc.pop(self.into, None)
        if raw is not None:
            doc.update(BSON(raw).decode(codec_options=options))
        return doc

    def projection(self, projection: Mapping[str, Any]) -> dict[str, Any]:
        """An inclusion projection that reads ``into`` when it asks for a packed field. (A packed field cannot be
        left out by an exclusion projection: the body comes whole, so such a key is dropped.)"""
        out = dict(projection)
        asked = [out.pop(k) for k in self.fields & set(projection)]  # every packed key out, not up to the first
        if any(asked):
            out[self.into] = 1
        return out


class DocumentStore:
    """Revision-checked access to one collection. Documents are plain dicts; services map them. With a
    :class:`Packing` the store packs what it writes and unpacks what it reads: its callers see plain documents."""

    def __init__(self, database: AsyncDatabase[Document], collection: str,
                 published: Published | None = None, packing: Packing | None = None) -> None:
        self.collection: AsyncCollection[Document] = database[collection]
        #: None: the process's ledger (``PUBLISHED``); a test gives another to play a second process.
        self.published = PUBLISHED if published is None else published
        self.packing = packing

    def _stored_form(self, doc: Document) -> Document:
        return doc if self.packing is None else self.packing.pack(doc, self.collection.codec_options)

    def unpacked(self, doc: Document) -> Document:
        """A document read from the collection directly, as the store's callers see it."""
        return doc if self.packing is None else self.packing.unpack(doc, self.collection.codec_options)

    async def get(self, doc_id: str) -> Document | None:
        doc = await self.collection.find_one({"_id": doc_id})
        return None if doc is None else self.unpacked(doc)

    async def find(self, query: Document, projection: Mapping[str, Any] | None = None, *,
                   sort: Sequence[tuple[str, int]] | None = None, limit: int = 0) -> list[Document]:
        """The documents ``query`` matches, as the store's callers see them (a packed field asked for in
        ``projection`` is read through the body). A filter: a scan on FerretDB v1, never for a hot path."""
        if projection is not None and self.packing is not None:
            projection = self.packing.projection(projection)
        cursor = self.collection.find(query, projection)
        if sort:
            cursor = cursor.sort(list(sort))
        return [self.unpacked(d) for d in await cursor.limit(limit).to_list(None)]

    async def insert(self, doc: Document, events: Sequence[tuple[CloudEvent, str]] = ()) -> Document:
        """Insert a new document at revision 1 with its events in the outbox. Raises DuplicateKeyError."""
        stored = {**doc, "revision": 1}
        _attach_outbox(stored, events, self.published, self.collection)
        await self.collection.insert_one(self._stored_form(stored))
        return stored

    async def replace(self, doc: Document, events: Sequence[tuple[CloudEvent, str]] = ()) -> Document:
        """Write ``doc`` if nobody wrote since it was read at ``doc['revision']``; append ``events``.

        Raises ConcurrencyError on a revision miss; the caller reloads, re-applies and retries.
        """
        expected = doc["revision"]
        stored = {**doc, "revision": expected + 1}
        _attach_outbox(stored, events, self.published, self.collection)
        result = await self.collection.replace_one({"_id": doc["_id"], "revision": expected},
                                                   self._stored_form(stored))
        if result.matched_count != 1:
            raise ConcurrencyError(f"{self.collection.name}/{doc['_id']} changed since revision {expected}")
        self.published.written(self.collection, stored)
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
        if self.packing is not None and self.packing.fields & set(fields):  # the packed fields go as one
            change = {k: v for k, v in self.packing.pack(stored, self.collection.codec_options).items()
                      if k in change or k == self.packing.into}
        change["revision"] = expected + 1
        before = list(doc.get("outbox") or [])
        _attach_outbox(stored, events, self.published, self.collection)
        if events or len(stored["outbox"]) != len(before):  # new events, or published ones that ride along
            change.update(outbox=stored["outbox"], has_outbox=stored["has_outbox"])
        else:  # the outbox as the database holds it (the relay may have cleared it since the read)
            stored["outbox"], stored["has_outbox"] = before, doc.get("has_outbox", bool(before))
        result = await self.collection.update_one({"_id": doc["_id"], "revision": expected}, {"$set": change})
        if result.matched_count != 1:
            raise ConcurrencyError(f"{self.collection.name}/{doc['_id']} changed since revision {expected}")
        if "outbox" in change:
            self.published.written(self.collection, stored)
        return stored


def _attach_outbox(doc: Document, events: Sequence[tuple[CloudEvent, str]], published: Published,
                   collection: AsyncCollection[Document]) -> None:
    outbox = published.drop_confirmed(collection, doc)
    outbox.extend(outbox_entry(event, exchange) for event, exchange in events)
    doc["outbox"] = outbox
    doc["has_outbox"] = bool(outbox)


def nested(fields: Mapping[str, Any], into: Document | None = None) -> Document:
    """A document with ``fields`` given as dotted paths (``"a.b": 1``), set as an update's ``$set`` would set them
    on ``into`` (a new document when None): for an insert that stands in for an upsert."""
    doc: Document = {} if into is None else into
    for path, value in fields.items():
        target = doc
        *above, last = path.split(".")
        for part in above:
            target = target.setdefault(part, {})
        target[last] = value
    return doc
