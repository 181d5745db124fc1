"""The outbox relay: publishes what documents hold in their ``outbox``, then removes it.

At-least-once: an event is removed only after the broker confirmed it. A crash after publishing and before
the removal publishes it again later with the same message id; consumers drop the duplicate.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from servicekit.broker import Broker
from servicekit.logging import get_logger
from servicekit.store import Document

log = get_logger(__name__)


class OutboxRelay:
    def __init__(self, broker: Broker, collections: Sequence[AsyncCollection[Document]], batch: int = 200) -> None:
        self.broker = broker
        self.collections = list(collections)
        self.batch = batch
        self.settings = broker.settings
        self._wake = asyncio.Event()
        self._pending: dict[str, AsyncCollection[Document]] = {}
        self._known: dict[str, Document] = {}  # documents handed over by their writer: no read needed
        self._scan_requested = False
        self.published = 0

    def wake(self, doc_id: str | None = None, collection: AsyncCollection[Document] | None = None,
             written: Document | None = None) -> None:
        """Called after a write that added to an outbox, so its events leave without waiting for the poll.

        With ``doc_id`` only that document is read (by ``_id``): FerretDB v1 evaluates other filters by
        scanning every document, which costs more than a poll should as collections grow. A writer that passes
        the document exactly as it ``written`` it saves even that read; if someone wrote it since, the
        revision-checked clear misses and the relay reads it then.
        """
        if doc_id is not None:
            self._pending[doc_id] = collection if collection is not None else self.collections[0]
            if written is not None:
                self._known[doc_id] = written
        else:
            self._scan_requested = True
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.5
        full_scan = True  # at start: whatever a previous process left behind
        while True:
            try:
                await self.drain_pending()
                if full_scan:
                    while await self.drain_once():
                        pass
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("relay.unavailable", error=f"{type(exc).__name__}: {exc}", retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if self._pending:
                full_scan = False
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.relay_poll_seconds)
                full_scan, self._scan_requested = self._scan_requested, False
            except TimeoutError:
                full_scan = True

    async def drain_pending(self) -> int:
        """Relay the documents named by ``wake``; each is read by ``_id``."""
        pending, self._pending = self._pending, {}
        known, self._known = self._known, {}
        docs = []
        for doc_id, collection in pending.items():
            doc = known.get(doc_id) or await collection.find_one({"_id": doc_id})
            if doc is not None and doc.get("has_outbox"):
                docs.append((collection, doc))
        try:
            return await self._relay(docs)
        except Exception:
            for collection, doc in docs:  # not lost: retried on the next round (or by the full scan)
                self._pending.setdefault(doc["_id"], collection)
            raise

    async def drain_once(self) -> int:
        """Publish one batch per collection; returns how many documents were cleared."""
        cleared = 0
        for collection in self.collections:
            docs = await collection.find({"has_outbox": True}).limit(self.batch).to_list(None)
            if docs:
                cleared += await self._relay([(collection, doc) for doc in docs])
        return cleared

    async def _relay(self, docs: list[tuple[AsyncCollection[Document], Document]]) -> int:
        """Publish every event of ``docs`` (confirmed), then remove them from the outboxes in batches."""
        if not docs:
            return 0
        published: set[str] = set()

        async def publish(entry: Document) -> None:
            await self.broker.publish_raw(entry["exchange"], entry["routing_key"], entry["body"].encode(),
                                          message_id=entry["id"], type_=entry["routing_key"])
            published.add(entry["id"])

        # Concurrent publishes share the channel; each waits for its own confirm. If one fails, nothing is
        # removed from the outboxes and the next round publishes the lot again (consumers drop duplicates).
        await asyncio.gather(*(publish(entry) for _, doc in docs for entry in doc.get("outbox") or []))
        self.published += len(published)
        if self.settings.fault == "relay-exit-after-publish":
            log.warning("fault.injected", fault=self.settings.fault)
            os._exit(71)
        by_collection: dict[str, tuple[AsyncCollection[Document], list[Document]]] = {}
        for collection, doc in docs:
            by_collection.setdefault(collection.full_name, (collection, []))[1].append(doc)
        cleared = 0
        for collection, batch in by_collection.values():
            for start in range(0, len(batch), CLEAR_BATCH):
                done, left = await _remove_published(collection, batch[start:start + CLEAR_BATCH], published)
                cleared += done
                for doc_id in left:  # written since we read it, with new events: relay those too, now
                    self.wake(doc_id, collection)
        return cleared


# How many documents one clearing command covers. One command instead of one per document halves the cost of
# the relay's writes; FerretDB v1 holds a connection per statement until the command ends (deploy/ferretdb), so
# the batch stays well below its pool of 100.
CLEAR_BATCH = 32


async def _remove_published(collection: AsyncCollection[Document], docs: list[Document],
                            published: set[str]) -> tuple[int, list[str]]:
    """Remove the published entries from ``docs`` in one command, each write checked on the revision read.

    Returns (documents cleared, ids of documents that still have unpublished entries). A document written
    since it was read misses its revision check; it is read again and cleared on its own.
    """
    # FerretDB v1 has no conditional $pull, so the remaining outbox is written back under a revision check.
    remaining = {doc["_id"]: [e for e in doc.get("outbox") or [] if e["id"] not in published] for doc in docs}
    result = await collection.bulk_write([
        UpdateOne({"_id": doc["_id"], "revision": doc["revision"]},
                  {"$set": {"outbox": remaining[doc["_id"]], "has_outbox": bool(remaining[doc["_id"]])},
                   "$inc": {"revision": 1}})
        for doc in docs
    ], ordered=False)
    if result.matched_count == len(docs):
        return len(docs), [doc_id for doc_id, rest in remaining.items() if rest]
    # Some were written meanwhile (the count does not say which): look at each again.
    cleared, left = 0, []
    for doc in docs:
        fresh = await collection.find_one({"_id": doc["_id"]})
        if fresh is None:
            continue
        if fresh["revision"] == doc["revision"] + 1 and not any(
                e["id"] in published for e in fresh.get("outbox") or []):
            cleared += 1  # this one was written by the batch
            if fresh.get("has_outbox"):
                left.append(doc["_id"])
            continue
        done, rest = await _remove_one(collection, fresh, published)
        cleared += done
        if rest:
            left.append(doc["_id"])
    return cleared, left


async def _remove_one(collection: AsyncCollection[Document], doc: Document,
                      published: set[str]) -> tuple[int, int]:
    """Remove the published entries from one document; returns (cleared, entries still waiting)."""
    while True:
        remaining = [e for e in doc.get("outbox") or [] if e["id"] not in published]
        if len(remaining) == len(doc.get("outbox") or []):
            return 0, len(remaining)  # nothing of ours in it (any more)
        result = await collection.update_one(
            {"_id": doc["_id"], "revision": doc["revision"]},
            {"$set": {"outbox": remaining, "has_outbox": bool(remaining)}, "$inc": {"revision": 1}},
        )
        if result.matched_count == 1:
            return 1, len(remaining)
        fresh = await collection.find_one({"_id": doc["_id"]})
        if fresh is None:
            return 0, 0
        doc = fresh
