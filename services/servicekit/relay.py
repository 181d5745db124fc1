"""The outbox relay: publishes what documents hold in their ``outbox``, then removes it.

At-least-once: an event is removed only after the broker confirmed it. A crash after publishing and before
the removal publishes it again later with the same message id; consumers drop the duplicate.

Removing published entries leaves ``revision`` alone: the revision is the aggregate's version (an HTTP ETag), and
a clear that raised it made the ETag a POST had just returned stale (a spurious 412 on the next If-Match), and
made a writer that read before the clear lose its revision check and redo its work. The clear is still checked
on the revision it read, so it never touches a document written since; a writer that read before the clear and
writes after it puts the published entries back.

So that such entries (and a copy a writer hands over after the relay had already published from the database)
do not go out twice, the relay remembers the ids of the last 20,000 events the broker confirmed to it
(``servicekit.store.Published``) and only clears those when it meets them again. Another process's relay (a
replica) or this one after a restart does not know them and publishes them once more: a duplicate the consumers
drop.

The clear waits ``relay_clear_after_seconds`` (issue 14.3): an aggregate is often written again within that
time, and the store leaves the confirmed entries out of that write, so the clear rides along a write that happens
anyway and the relay's own clear is owed no more. What is still owed when it falls due is cleared as before (many
documents per command); a relay that stops clears what it owes first. A crash before that publishes those events
again after the restart: a duplicate the consumers drop, as for a crash between confirm and clear before.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from aio_pika.exceptions import DeliveryError
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from servicekit import metrics
from servicekit.broker import Broker
from servicekit.logging import get_logger
from servicekit.store import PUBLISHED, Document, Published

log = get_logger(__name__)

#: The idle scan waits at least this many times as long as the last scan took. On FerretDB v1 a scan decodes
#: every document of the collections (0.3 ms each: 7.4 s for intake's 22,000 aanvragen, measured in issue 14's
#: history run), so with a fixed 5 s the relays of a year's databases scanned without pause; this keeps a
#: scan to about 3 % of the time however large the collections grow. Small databases still scan every
#: ``relay_poll_seconds``; a crashed process's outboxes are found at the latest that much later.
SCAN_SPACING = 30.0


class Wake(Protocol):
    """``OutboxRelay.wake`` as a service's handlers get it: after a write that added to an outbox, the document's
    id, its collection and, when the writer has it, the document as written (then the relay need not read it)."""

    def __call__(self, doc_id: str | None = None, collection: AsyncCollection[Document] | None = None,
                 written: Document | None = None) -> None: ...


def no_relay(doc_id: str | None = None, collection: AsyncCollection[Document] | None = None,
             written: Document | None = None) -> None:
    """The ``Wake`` of handlers without a relay (unit tests): the poll finds what they wrote."""


class OutboxRelay:
    #: A seam for crash tests, awaited with the ids of the events the broker confirmed, before they are removed
    #: from the outboxes (the one moment a crash publishes them twice). Tests set it on the class before a
    #: service starts (tests/support/faults.py); production code leaves it None and never reads a fault setting.
    before_clear: ClassVar[Callable[[set[str]], Awaitable[None]] | None] = None

    def __init__(self, broker: Broker, collections: Sequence[AsyncCollection[Document]], batch: int = 200,
                 published: Published | None = None) -> None:
        self.broker = broker
        self.collections = list(collections)
        self.batch = batch
        self.settings = broker.settings
        self._wake = asyncio.Event()
        self._pending: dict[str, AsyncCollection[Document]] = {}
        self._known: dict[str, Document] = {}  # documents handed over by their writer: no read needed
        self._held: dict[str, _Held] = {}  # documents with an event the broker refused: tried again later
        self._woken_at: dict[str, float] = {}  # when a writer first named a document still to publish: relay lag
        self._scan_requested = False
        #: What the broker confirmed and the clears still owed; shared with the process's stores (which leave
        #: confirmed entries out of their writes). A test gives another ledger to play a second process.
        self.ledger = PUBLISHED if published is None else published
        self.clear_after = self.settings.relay_clear_after_seconds
        self.published = 0
        #: How long the last full scan took (seconds): the idle scan waits ``SCAN_SPACING`` times that at least.
        self.last_scan_seconds = 0.0

    def wake(self, doc_id: str | None = None, collection: AsyncCollection[Document] | None = None,
             written: Document | None = None) -> None:
        """Called after a write that added to an outbox, so its events leave without waiting for the poll.

        With ``doc_id`` only that document is read (by ``_id``): FerretDB v1 evaluates other filters by
        scanning every document, which costs more than a poll should as collections grow. A writer that passes
        the document exactly as it ``written`` it saves even that read; if someone wrote it since, the
        revision-checked clear misses and the relay reads it then.
        """
        if doc_id is not None:
            if self._held_back(doc_id):
                return  # its new events queue behind the refused one; the document is tried again when due
            self._pending[doc_id] = collection if collection is not None else self.collections[0]
            self._woken_at.setdefault(doc_id, time.perf_counter())
            if written is not None:
                self._known[doc_id] = written
        else:
            self._scan_requested = True
        self._wake.set()

    @property
    def held(self) -> int:
        """How many documents wait for a retry because the broker refused one of their events."""
        return len(self._held)

    async def run(self) -> None:
        self.ledger.attach(self._wake.set, self.clear_after)
        try:
            await self._run()
        finally:
            self.ledger.detach()
            # Stopping: clear what is owed now (bounded), so that a restart does not publish it again.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.clear_owed(everything=True), timeout=STOP_CLEAR_SECONDS)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = 0.5
        full_scan = True  # at start: whatever a previous process left behind
        next_scan = 0.0
        while True:
            woken = bool(self._pending)
            self._release_due()
            self._report_depth()
            failure: Exception | None = None
            # The named documents and the full scan fail separately. A refused event (``RelayFailed``) holds
            # back its own document only, with its own backoff; anything else (broker or database away) backs
            # the whole relay off and forces a full scan afterwards.
            for step in (self.drain_pending, self._scan if full_scan else None, self.clear_owed):
                if step is None:
                    continue
                try:
                    await step()
                except asyncio.CancelledError:
                    raise
                except RelayFailed:
                    pass  # those documents are held (see ``_hold``); the rest went out
                except Exception as exc:
                    failure = failure or exc
            if (full_scan or woken) and failure is None:
                # The poll scans after relay_poll_seconds without work (a busy relay is woken for every write),
                # and never sooner than SCAN_SPACING times the last scan's time (a large database).
                next_scan = loop.time() + max(self.settings.relay_poll_seconds,
                                              SCAN_SPACING * self.last_scan_seconds)
            if failure is not None:
                log.warning("relay.unavailable", error=f"{type(failure).__name__}: {failure}", retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                full_scan = True  # the scan may have been cut short, or not run
                continue
            backoff = 0.5
            if self._pending:
                full_scan = False
                continue
            self._wake.clear()
            self._report_depth()
            timeout = max(0.0, next_scan - loop.time())
            if self._held:
                timeout = min(timeout, max(0.0, min(h.due for h in self._held.values()) - loop.time()))
            owed = self.ledger.next_due()
            if owed is not None:
                timeout = min(timeout, max(0.0, owed - loop.time()))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
                full_scan, self._scan_requested = self._scan_requested, False
            except TimeoutError:
                full_scan = loop.time() >= next_scan  # else a held document or a clear is due: no scan for that

    async def _scan(self) -> None:
        """Relay every document that has an outbox, collection by collection, page by page (by ``_id``).

        A page full of held documents does not hide the pages after it, and a refused event in one collection
        does not stop the scan of the next.
        """
        started = time.monotonic()
        try:
            await self._scan_collections()
        finally:
            self.last_scan_seconds = time.monotonic() - started

    async def _scan_collections(self) -> None:
        refused: list[tuple[AsyncCollection[Document], Document]] = []
        for collection in self.collections:
            after: object = None
            while True:
                query: dict[str, object] = {"has_outbox": True}
                if after is not None:
                    query["_id"] = {"$gt": after}
                docs = await collection.find(query).sort("_id", 1).limit(self.batch).to_list(None)
                metrics.OUTBOX_SCAN_FOUND.inc(len(docs))
                try:
                    await self._relay([(collection, doc) for doc in docs if not self._held_back(doc["_id"])])
                except RelayFailed as exc:
                    refused += exc.failed
                if len(docs) < self.batch:
                    break
                after = docs[-1]["_id"]
        if refused:
            raise RelayFailed(refused)

    async def drain_pending(self) -> int:
        """Relay the documents named by ``wake``; each is read by ``_id``."""
        pending, self._pending = self._pending, {}
        known, self._known = self._known, {}
        docs: list[tuple[AsyncCollection[Document], Document]] = []
        try:
            for doc_id, collection in pending.items():
                doc = known.get(doc_id) or await collection.find_one({"_id": doc_id})
                if doc is not None and doc.get("has_outbox"):
                    docs.append((collection, doc))
                else:
                    self._held.pop(doc_id, None)
                    self._woken_at.pop(doc_id, None)
        except Exception:
            for doc_id, collection in pending.items():  # not lost: read again on the next round
                self._pending.setdefault(doc_id, collection)
            raise
        try:
            return await self._relay(docs)
        except RelayFailed:
            raise  # the documents it names are held; the others were published and cleared
        except Exception:
            for collection, doc in docs:  # not lost: retried on the next round (and found by the full scan)
                self._pending.setdefault(doc["_id"], collection)
            raise

    def _report_depth(self) -> None:
        metrics.OUTBOX_DEPTH.labels("pending").set(len(self._pending))
        metrics.OUTBOX_DEPTH.labels("held").set(len(self._held))

    def _held_back(self, doc_id: str) -> bool:
        held = self._held.get(doc_id)
        return held is not None and held.due > asyncio.get_running_loop().time()

    def _hold(self, failed: list[tuple[AsyncCollection[Document], Document]]) -> None:
        """Hold documents whose events the broker refused; each is tried again after its own backoff."""
        now = asyncio.get_running_loop().time()
        for collection, doc in failed:
            previous = self._held.get(doc["_id"])
            delay = HOLD_FIRST if previous is None else min(previous.delay * 2, HOLD_MAX)
            self._held[doc["_id"]] = _Held(collection, now + delay, delay)

    def _release_due(self) -> None:
        now = asyncio.get_running_loop().time()
        for doc_id, held in self._held.items():
            if held.due <= now:
                self._pending.setdefault(doc_id, held.collection)

    async def _relay(self, docs: list[tuple[AsyncCollection[Document], Document]]) -> int:
        """Publish the events of ``docs`` (confirmed), then remove what was published from the outboxes.

        A document's events go out one after the other, in outbox order; documents go out concurrently on the
        shared channel, each publish waiting for its own confirm. A document with an event the broker did not
        confirm keeps that event and the ones after it; the others are cleared all the same, and then
        ``RelayFailed`` names the documents to try again.
        """
        if not docs:
            return 0
        published: set[str] = set()
        sent_before: set[str] = set()  # confirmed in an earlier round: only to be cleared

        async def publish_document(collection: AsyncCollection[Document], doc: Document) -> None:
            for entry in doc.get("outbox") or []:
                if self.ledger.confirmed(collection, doc["_id"], entry["id"]):
                    sent_before.add(entry["id"])
                    continue
                await self.broker.publish_raw(entry["exchange"], entry["routing_key"], entry["body"].encode(),
                                              message_id=entry["id"], type_=entry["routing_key"])
                published.add(entry["id"])
                self.ledger.remember(collection, doc["_id"], entry["id"])

        results = await asyncio.gather(*(publish_document(collection, doc) for collection, doc in docs),
                                       return_exceptions=True)
        failed: list[tuple[AsyncCollection[Document], Document]] = []
        first_error: BaseException | None = None
        outage: BaseException | None = None  # not a refusal: the broker or the connection is away
        for (collection, doc), result in zip(docs, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                # Not this relay being cancelled (gather raises that itself): the publish was cancelled under it, as
                # aiormq may do to a confirm it waits for when its channel closes. An outage, backed off and tried
                # again; raised, it ended the relay task without a word and the outboxes stayed.
                result = ConnectionError(f"publish cancelled before the broker confirmed: {result!r}")
            if isinstance(result, BaseException):
                failed.append((collection, doc))
                first_error = first_error or result
                if not isinstance(result, DeliveryError):
                    outage = outage or result
        self.published += len(published)
        metrics.EVENTS_PUBLISHED.inc(len(published))
        failed_ids = {doc["_id"] for _, doc in failed}
        confirmed = time.perf_counter()
        for _, doc in docs:
            woken = self._woken_at.pop(doc["_id"], None) if doc["_id"] not in failed_ids else None
            if woken is not None:
                metrics.RELAY_LAG.observe(confirmed - woken)
        gone = published | sent_before
        owed: list[tuple[AsyncCollection[Document], Document, set[str]]] = []
        for collection, doc in docs:
            ids = {entry["id"] for entry in doc.get("outbox") or []} & gone
            if ids:  # else nothing of it went out: nothing to remove
                owed.append((collection, doc, ids))
        hook = type(self).before_clear
        if owed and hook is not None:
            await hook(published)
        due = asyncio.get_running_loop().time() + self.clear_after
        for collection, doc, ids in owed:
            self.ledger.owe(collection, doc, ids, due)
        cleared = await self.clear_owed(held=failed_ids) if self.clear_after <= 0 else 0
        for _, doc in docs:
            if doc["_id"] not in failed_ids:
                self._held.pop(doc["_id"], None)
        if outage is not None:
            raise outage  # the caller backs off as a whole; what was published is cleared above
        if failed:
            self._hold(failed)
            log.warning("relay.publish_failed", documents=len(failed), cleared=cleared, held=len(self._held),
                        error=f"{type(first_error).__name__}: {first_error}")
            raise RelayFailed(failed) from first_error
        return cleared

    async def clear_owed(self, everything: bool = False, held: set[str] | frozenset[str] = frozenset()) -> int:
        """Remove the published entries whose clear is due (``everything``: all that is owed) from their outboxes,
        many documents per command. Returns how many documents were cleared. ``held``: documents about to be
        held back (an event refused), not to be relayed again at once."""
        taken = self.ledger.take_due(None if everything else asyncio.get_running_loop().time())
        by_collection: dict[str, tuple[AsyncCollection[Document], list[tuple[Document, Document]], set[str]]] = {}
        for owed in taken:
            entry = by_collection.setdefault(owed.collection.full_name, (owed.collection, [], set()))
            entry[1].append((owed.doc, owed.fields))
            entry[2].update(owed.ids)
        cleared = 0
        try:
            for collection, batch, ids in by_collection.values():
                for start in range(0, len(batch), CLEAR_BATCH):
                    part, left = await _remove_published(collection, batch[start:start + CLEAR_BATCH], ids)
                    cleared += part
                    for doc_id in left:  # written since we read it, with new events: relay those too, now
                        if doc_id not in held:
                            self.wake(doc_id, collection)
        except Exception:
            # Not lost: owed again (the ones done so far are harmless to clear twice), the caller backs off.
            self.ledger.give_back(taken)
            raise
        return cleared


@dataclass(slots=True)
class _Held:
    collection: AsyncCollection[Document]
    due: float  # loop time of the next try
    delay: float


# How long a relay that stops may take to clear what it owes before it gives up (a restart then publishes those
# events once more).
STOP_CLEAR_SECONDS = 5.0

# A document with a refused event is tried again after HOLD_FIRST seconds, doubling up to HOLD_MAX.
HOLD_FIRST = 0.5
HOLD_MAX = 30.0


class RelayFailed(Exception):
    """Some documents' events were not confirmed by the broker; ``failed`` names those documents."""

    def __init__(self, failed: list[tuple[AsyncCollection[Document], Document]]) -> None:
        super().__init__(f"{len(failed)} document(s) not relayed")
        self.failed = failed


# How many documents one clearing command covers. One command instead of one per document halves the cost of
# the relay's writes. The local FerretDB front sends up to 64 such statements to FerretDB as one command
# (deploy/ferretdb/update.go); FerretDB v1 holds a pooled connection per statement until the command ends.
CLEAR_BATCH = 32


async def _remove_published(collection: AsyncCollection[Document], owed: list[tuple[Document, Document]],
                            published: set[str]) -> tuple[int, list[str]]:
    """Remove the published entries from the documents ``owed`` in one command (and set the fields owed with
    each), each write checked on the revision read.

    Returns (documents cleared, ids of documents that still have unpublished entries). A document written
    since it was read misses its revision check; it is read again and cleared on its own (its owed fields
    belonged to the revision read: the newer write carries its own).
    """
    # FerretDB v1 has no conditional $pull, so the remaining outbox is written back under a revision check (that
    # leaves the revision as it is: see the module docstring).
    remaining = {doc["_id"]: [e for e in doc.get("outbox") or [] if e["id"] not in published] for doc, _ in owed}
    statements, docs, left_over = [], [], []
    for doc, fields in owed:
        change = dict(fields)
        kept = remaining[doc["_id"]]
        if len(kept) != len(doc.get("outbox") or []):
            change.update(outbox=kept, has_outbox=bool(kept))
            if kept:
                left_over.append(doc["_id"])
        if change:  # else a write took everything along already
            statements.append(UpdateOne({"_id": doc["_id"], "revision": doc["revision"]}, {"$set": change}))
            docs.append(doc)
    if not statements:
        return 0, []
    result = await collection.bulk_write(statements, ordered=False)
    if result.matched_count == len(docs):
        return len(docs), left_over
    # Some were written meanwhile (the count does not say which): look at each again.
    cleared, left = 0, []
    for doc in docs:
        fresh = await collection.find_one({"_id": doc["_id"]})
        if fresh is None:
            continue
        if fresh["revision"] == doc["revision"] and not any(
                e["id"] in published for e in fresh.get("outbox") or []):
            cleared += 1  # this one was written by the batch (or cleared by another relay meanwhile)
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
            {"$set": {"outbox": remaining, "has_outbox": bool(remaining)}},
        )
        if result.matched_count == 1:
            return 1, len(remaining)
        fresh = await collection.find_one({"_id": doc["_id"]})
        if fresh is None:
            return 0, 0
        doc = fresh
