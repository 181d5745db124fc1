"""The allocator: decides reservation requests in the order of receipt of complete applications (Awb 4:25).

The consumer only stores requests; deciding them in the consumer would follow the order in which messages
happen to arrive. Every ``interval`` seconds the process that holds the ``allocator`` lease (one across all
grants processes) takes the waiting requests and decides them sorted by (volledig_ontvangen_op, aanvraag id).

A request waits at least the settle window (``verdeelvenster``) after grants received it, so that requests
for applications completed around the same time, but delivered in another order, are all present before
either is decided. A settled request is also held back while a request for an application completed
earlier is still settling: the earlier one goes first.

Correctness of the money does not depend on the lease: every step is a guarded update keyed by the aanvraag
id. The lease only keeps the order (and saves work). It is taken and renewed only while a request waits: an
idle allocator writes nothing (it used to renew every round, ~2 writes/s). With work, a round is what it was
(take the lease, then read the requests, then decide): a version that read first and renewed less often
decided out of order under load in test_grants_budget_concurrency, because the settle window alone does not
keep the order when requests arrive late (issue 14 item 4 replaces the window).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from grants.handlers import GrantsHandlers
from grants.repository import GrantsRepository
from servicekit.logging import get_logger

log = get_logger(__name__)
LEASE = "allocator"


def in_volgorde(requests: list[dict[str, Any]], now: datetime, venster: timedelta) -> list[str]:
    """The ids to decide now, in order: settled requests up to the first one that an earlier-completed,
    still settling request must precede."""
    def key(r: dict[str, Any]) -> tuple[datetime, str]:
        return (_utc(r["volledig_ontvangen_op"]), r["_id"])

    settled = sorted((r for r in requests if _utc(r["ontvangen_door_grants"]) <= now - venster), key=key)
    settling = [key(r) for r in requests if _utc(r["ontvangen_door_grants"]) > now - venster]
    first_settling = min(settling) if settling else None
    return [r["_id"] for r in settled if first_settling is None or key(r) < first_settling]


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Allocator:
    def __init__(self, repo: GrantsRepository, handlers: GrantsHandlers, venster_seconds: float,
                 interval: float = 0.5, lease_seconds: float = 10.0) -> None:
        self.repo = repo
        self.handlers = handlers
        self.venster = timedelta(seconds=venster_seconds)
        self.interval = interval
        self.lease = timedelta(seconds=lease_seconds)
        self.holder = f"allocator-{uuid.uuid4().hex[:12]}"
        self.decided = 0
        self._held = False  # whether this process took the lease (shutting down drops it only then)

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.round()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("allocator.round_failed", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(self.interval)
        finally:
            with contextlib.suppress(Exception):  # shutting down: otherwise the lease simply expires
                if self._held:
                    await asyncio.shield(self.repo.drop_lease(LEASE, self.holder, datetime.now(UTC)))

    async def round(self) -> int:
        """One pass: take (or keep) the lease, then decide what is due. Returns how many were decided."""
        if not await self.repo.has_pending_requests():
            return 0  # nothing waits: no lease write
        now = datetime.now(UTC)
        if not await self.repo.take_lease(LEASE, self.holder, now, now + self.lease):
            return 0
        self._held = True
        due = in_volgorde(await self.repo.pending_requests(), now, self.venster)
        renewed = now
        decided = 0
        for request_id in due:
            moment = datetime.now(UTC)
            if moment - renewed > self.lease / 3:
                if not await self.repo.take_lease(LEASE, self.holder, moment, moment + self.lease):
                    break  # someone else took over (we were too slow): stop, they continue in order
                renewed = moment
            if await self.handlers.decide(request_id):
                decided += 1
        self.decided += decided
        return decided
