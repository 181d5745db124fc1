"""The outbox relay: publishes what documents hold in their ``outbox``, then removes it.

At-least-once: an event is removed only after the broker confirmed it. A crash after publishing and before
the removal publishes it again later with the same message id; consumers drop the duplicate.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

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
            results = await asyncio.gather(*(self._relay(c, d) for c, d in docs))
        except Exception:
            for collection, doc in docs:  # not lost: retried on the next round (or by the full scan)
                self._pending.setdefault(doc["_id"], collection)
            raise
        return sum(results)

    async def drain_once(self) -> int:
        """Publish one batch per collection; returns how many documents were cleared."""
        cleared = 0
        for collection in self.collections:
            docs = await collection.find({"has_outbox": True}).limit(self.batch).to_list(None)
            if not docs:
                continue
            results = await asyncio.gather(*(self._relay(collection, doc) for doc in docs))
            cleared += sum(results)
        return cleared

    async def _relay(self, collection: AsyncCollection[Document], doc: Document) -> int:
        published: set[str] = set()
        for entry in doc.get("outbox") or []:
            await self.broker.publish_raw(entry["exchange"], entry["routing_key"], entry["body"].encode(),
                                          message_id=entry["id"], type_=entry["routing_key"])
            published.add(entry["id"])
        self.published += len(published)
        if self.settings.fault == "relay-exit-after-publish":
            log.warning("fault.injected", fault=self.settings.fault)
            os._exit(71)
        cleared, left = await _remove_published(collection, doc, published)
        if left:  # written since we read it, with new events: relay those too, without waiting for the poll
            self.wake(doc["_id"], collection)
        return cleared


async def _remove_published(collection: AsyncCollection[Document], doc: Document,
                            published: set[str]) -> tuple[int, int]:
    """Remove the published entries; returns (documents cleared, entries still waiting in the outbox)."""
    # FerretDB v1 has no conditional $pull, so the remaining outbox is written back under a revision check.
    while True:
        remaining = [e for e in doc.get("outbox") or [] if e["id"] not in published]
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
