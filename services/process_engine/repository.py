"""Documents of the process engine: deployed definitions (by content hash) and one instance per case."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from process_engine.readmodels import ReadModels
from servicekit.logging import PERSONAL_DATA_KEYS
from servicekit.store import Document, DocumentStore, DuplicateKeyError

#: How many applied message ids an instance remembers for de-duplication (older ones cannot come back:
#: the broker redelivers recent messages, and replies to closed commands are dropped anyway).
APPLIED_MEMORY = 500


class DefinitionRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["definitions"]

    async def get(self, content_hash: str) -> Document | None:
        return await self.collection.find_one({"_id": content_hash})

    async def add(self, doc: Document) -> bool:
        """Store a definition once; False when the same content was deployed before."""
        if await self.get(doc["_id"]):
            return False
        latest = await self.latest(doc["process_id"])
        doc["version"] = (latest["version"] + 1) if latest else 1
        await self.collection.insert_one(doc)
        return True

    async def latest(self, process_id: str) -> Document | None:
        docs = await self.collection.find({"process_id": process_id}).sort("version", DESCENDING).limit(1).to_list(1)
        return docs[0] if docs else None

    async def all(self) -> list[Document]:
        return await self.collection.find({}, {"files": 0}).sort([("process_id", 1), ("version", 1)]).to_list(None)


class InstanceRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.store = DocumentStore(db, "instances")
        self.collection = self.store.collection
        #: The journal and history of each case, append-only, in buckets (see ``Engine._take_archive``):
        #: the instance document keeps only the latest entries, so it stays small however long the case runs.
        self.log = db["case_log"]
        #: Open tasks, work lists and due timers, each read by _id (``readmodels``).
        self.views = ReadModels(db)

    async def ensure_indexes(self) -> None:
        """The indexes MongoDB (compose) uses for the filters that remain: the relay's scan at start and when
        idle, the case explorer (beheer), the case log and the read models' repair. FerretDB v1 accepts them
        and still scans; no hot path filters on anything but _id (issue 14)."""
        await self.collection.create_index("has_outbox")
        await self.collection.create_index([("started_at", DESCENDING), ("_id", 1)])
        await self.collection.create_index([("status", 1), ("started_at", DESCENDING)])
        await self.log.create_index("case_id")
        await self.views.ensure_indexes()

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
