"""Documents of the process engine: deployed definitions (by content hash) and one instance per case.

An open case lives in ``instances``; when it ends (completed or cancelled) its document moves to
``closed_instances`` (:meth:`InstanceRepository.move_closed`), so that what scans ``instances`` (the relay's idle
scan, the read models' repair at start, the case index's start) grows with the work in progress, not with the
history (issue 14). The move is two writes, in an order a crash cannot hurt: the copy in ``closed_instances``
first (an upsert by ``_id``: writing it twice writes the same), then the delete from ``instances``, checked on
the revision the copy was taken from. Between the two the case is in both, and readers look in ``instances``
first (:class:`InstanceStore`), so they see one case either way; the engine's start finishes every move a crash
left half done (:meth:`InstanceRepository.closing`).
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from process_engine.packed import INSTANCE_PACKING
from process_engine.readmodels import ReadModels
from servicekit.logging import PERSONAL_DATA_KEYS
from servicekit.store import Document, DocumentStore, DuplicateKeyError

#: How many applied message ids an instance remembers for de-duplication (older ones cannot come back:
#: the broker redelivers recent messages, and replies to closed commands are dropped anyway).
APPLIED_MEMORY = 500


class DefinitionRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["definitions"]
        #: Per process id the content hash of each stored version (``{_id: process_id, v: {"v3": hash}}``), so a
        #: case start finds the latest by ``_id``: a filter on ``process_id`` made FerretDB v1 decode every stored
        #: definition, XML and DMN test cases included (a 146 KB answer and the largest read of a case).
        self.versions = db["definition_versions"]

    async def get(self, content_hash: str) -> Document | None:
        return await self.collection.find_one({"_id": content_hash})

    async def add(self, doc: Document) -> bool:
        """Store a definition once; False when the same content was deployed before."""
        if stored := await self.get(doc["_id"]):
            await self._record_version(stored)  # a crash between the two writes left it out: deploying again adds it
            return False
        latest = await self.latest(doc["process_id"])
        doc["version"] = (latest["version"] + 1) if latest else 1
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:
            return False  # another replica, starting at the same moment, stored it first (the _id is the content)
        await self._record_version(doc)
        return True

    async def _record_version(self, doc: Document) -> None:
        await self.versions.update_one({"_id": doc["process_id"]},
                                       {"$set": {f"v.v{doc['version']}": doc["_id"]}}, upsert=True)

    async def latest_hash(self, process_id: str) -> str | None:
        """The content hash of the process's latest version, read by ``_id``; definitions stored before
        ``definition_versions`` existed are looked up once the slow way and recorded."""
        entry = await self.versions.find_one({"_id": process_id})
        hashes: dict[str, str] = (entry or {}).get("v") or {}
        if hashes:
            return hashes[max(hashes, key=lambda key: int(key[1:]))]
        latest = await self.collection.find({"process_id": process_id}, {"_id": 1, "process_id": 1, "version": 1}) \
            .sort("version", DESCENDING).limit(1).to_list(1)
        if not latest:
            return None
        await self._record_version(latest[0])
        return str(latest[0]["_id"])

    async def latest(self, process_id: str) -> Document | None:
        docs = await self.collection.find({"process_id": process_id}).sort("version", DESCENDING).limit(1).to_list(1)
        return docs[0] if docs else None

    async def all(self) -> list[Document]:
        return await self.collection.find({}, {"files": 0}).sort([("process_id", 1), ("version", 1)]).to_list(None)


#: What a closed case's copy leaves behind: the outbox (empty when it moves) and the read models' bookkeeping.
_HOT_FIELDS = frozenset({"outbox", "has_outbox", "views_behind", "view_tasks", "timer_days", "view_hash", "timer_at",
                         "timer_lease_until", "timer_lease_owner"})
#: Marks a document read from ``closed_instances``: it has moved, nothing is left to do for it.
CLOSED_COPY = "closed_copy"
#: What the case index keeps of a closed case (servicekit.zaakindex.PROJECTIE, written at close).
SUMMARY_FIELDS = ("status", "process_id", "definition_hash", "active_elements", "incidents", "started_at",
                  "variables")


class InstanceStore(DocumentStore):
    """The open cases, revision-checked and packed (``INSTANCE_PACKING``); :meth:`get` finds a closed case as
    well (in ``closed_instances``, whose copies are plain documents)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        super().__init__(db, "instances", packing=INSTANCE_PACKING)
        self.closed = db["closed_instances"]

    async def get(self, doc_id: str) -> Document | None:
        # instances first: a move writes the closed copy before it deletes, so one of the two reads finds the case
        doc = await self.get_open(doc_id)
        return await self.closed.find_one({"_id": doc_id}) if doc is None else doc

    async def get_open(self, doc_id: str) -> Document | None:
        """The case if it is still in ``instances`` (None once it has moved), as ``get`` gives it."""
        doc = await super().get(doc_id)
        return None if doc is None else self.with_owed(doc)

    def with_owed(self, doc: Document) -> Document:
        """``doc`` with the read models' cleared mark, if still owed to the relay (readmodels): the case as it is,
        and the engine's next write of it takes the mark along instead of the relay writing it."""
        doc.update(self.published.fields_for(self.collection, doc))
        return doc


class InstanceRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.store = InstanceStore(db)
        #: The open cases (and a closed one for the moment between its last write and its move).
        self.collection = self.store.collection
        #: Every closed case, whole (its state included), read by ``_id``.
        self.closed = self.store.closed
        #: A small summary of every closed case, written when it moves: what the case index reads at start
        #: instead of every closed case's document (servicekit.zaakindex).
        self.summaries = db["closed_summaries"]
        #: The journal and history of each case, append-only, in buckets (see ``Engine._take_archive``):
        #: the instance document keeps only the latest entries, so it stays small however long the case runs.
        self.log = db["case_log"]
        #: Open tasks, work lists and due timers, each read by _id (``readmodels``).
        self.views = ReadModels(db)

    async def ensure_indexes(self) -> None:
        """The indexes MongoDB (compose) uses for the filters that remain: the relay's scan at start and when
        idle, the case explorer (beheer; before its index is read: the open cases and the closed summaries), the
        version statistics, the case log, the moves left at start and the read models' repair. FerretDB v1
        accepts them and still scans; no hot path filters on anything but _id (issue 14)."""
        await self.collection.create_index("has_outbox")
        await self.collection.create_index([("started_at", DESCENDING), ("_id", 1)])
        await self.collection.create_index([("status", 1), ("started_at", DESCENDING)])
        await self.collection.create_index("definition_hash")
        await self.closed.create_index("definition_hash")
        await self.summaries.create_index([("started_at", DESCENDING), ("_id", 1)])
        await self.log.create_index("case_id")
        await self.views.ensure_indexes()

    async def move_closed(self, doc: Document) -> bool:
        """Move a case that ended from ``instances`` to ``closed_instances`` (see the module docstring).

        ``doc`` as last written. Not while its outbox holds events the broker has not confirmed to this process's
        relay (they are published from ``instances``; confirmed ones need no clear first, the delete takes them
        along) or its read models are behind and not synced by this process (the repair reads ``instances``): then
        False, and the caller tries again later. False as well when someone wrote the case since ``doc`` was read
        (the delete misses); the copy written meanwhile is harmless, the next try writes it anew."""
        published = self.store.published
        if doc.get("status") == "running" or published.unpublished(self.collection, doc):
            return False
        case_id = doc["_id"]
        await self.closed.replace_one({"_id": case_id}, {**{k: v for k, v in doc.items() if k not in _HOT_FIELDS},
                                                         CLOSED_COPY: True}, upsert=True)
        await self.summaries.replace_one({"_id": case_id}, {k: doc.get(k) for k in SUMMARY_FIELDS}, upsert=True)
        # At one revision the outbox only shrinks (the relay's clear leaves the revision alone): what it holds now
        # was in ``doc``'s, and so confirmed. A mark this process synced needs no clear either.
        condition: Document = {"_id": case_id, "revision": doc["revision"]}
        if not self.views.synced(doc):
            condition["views_behind"] = {"$ne": True}
        gone = await self.collection.delete_one(condition)
        if gone.deleted_count == 1:
            published.gone(self.collection, case_id)
        return gone.deleted_count == 1

    async def closing(self) -> list[str]:
        """The cases that ended but are still in ``instances`` (a move not yet done, or cut short by a crash).
        A filter, so a scan on FerretDB, but of the open cases only: at start, in the background."""
        return [d["_id"] async for d in self.collection.find({"status": {"$ne": "running"}}, {"_id": 1})]

    async def find_with_closed(self, query: dict[str, Any], projection: dict[str, Any]) -> list[Document]:
        """Every case, open or closed, that matches ``query`` (a scan of both: functioneel beheer's statistics
        and lists, never a hot path); a case caught between the two writes of its move counts once."""
        found = {d["_id"]: d for d in await self.closed.find(query, projection).to_list(None)}
        found.update({d["_id"]: d for d in await self.store.find(query, projection)})
        return list(found.values())

    async def append_log(self, bucket: Document) -> None:
        """Store a bucket of log entries once. Its id names its case and its first and last entry, and its
        entries were committed in the instance before, so a bucket written twice holds the same entries."""
        with contextlib.suppress(DuplicateKeyError):
            await self.log.insert_one(bucket)

    async def log_of(self, case_id: str) -> list[Document]:
        return await self.log.find({"case_id": case_id}).sort("_id", 1).to_list(None)

    async def take_timer_lease(self, doc: Document, owner: str, until: datetime, now: datetime) -> bool:
        """Claim the right to fire this instance's due timers. One worker wins; others skip it.

        Correctness does not depend on the lease (the final save is revision-checked and command ids are
        deterministic); the lease only keeps two workers from doing the same work.
        """
        lease = doc.get("timer_lease_until")
        if lease is not None and lease > now:
            return False
        result = await self.collection.update_one(
            {"_id": doc["_id"], "revision": doc["revision"]},
            {"$set": {"timer_lease_until": until, "timer_lease_owner": owner}, "$inc": {"revision": 1}},
        )
        return result.matched_count == 1


def remember_applied(doc: Document, message_id: str) -> None:
    applied = list(doc.get("applied") or [])
    applied.append(message_id)
    doc["applied"] = applied[-APPLIED_MEMORY:]


def public_variables(data: dict[str, Any]) -> dict[str, Any]:
    """Process variables an API may show: no personal data, nothing internal."""
    return {k: v for k, v in data.items()
            if not k.startswith("_") and not k.startswith("spiff") and k.lower() not in PERSONAL_DATA_KEYS}
