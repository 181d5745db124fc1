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
        self.published = 0

    def wake(self) -> None:
        """Called after a write that added to an outbox, so events leave without waiting for the poll."""
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
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
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.relay_poll_seconds)
            except TimeoutError:
                pass

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
        return await _remove_published(collection, doc, published)


async def _remove_published(collection: AsyncCollection[Document], doc: Document, published: set[str]) -> int:
    # FerretDB v1 has no conditional $pull, so the remaining outbox is written back under a revision check.
    while True:
        remaining = [e for e in doc.get("outbox") or [] if e["id"] not in published]
        result = await collection.update_one(
            {"_id": doc["_id"], "revision": doc["revision"]},
            {"$set": {"outbox": remaining, "has_outbox": bool(remaining)}, "$inc": {"revision": 1}},
        )
        if result.matched_count == 1:
            return 1
        fresh = await collection.find_one({"_id": doc["_id"]})
        if fresh is None:
            return 0
        doc = fresh
