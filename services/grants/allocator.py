"""The allocator: decides reservation requests in the order of receipt of complete applications (Awb 4:25).

The consumer only stores requests; deciding them in the consumer would follow the order in which messages
happen to arrive. Every ``interval`` seconds the process that holds the ``allocator`` lease (one across all
grants processes) takes the waiting requests and decides them sorted by (volledig_ontvangen_op, aanvraag id).

A request waits at least the settle window (``verdeelvenster``) after grants received it, so that requests
for applications completed around the same time, but delivered in another order, are all present before
either is decided. A settled request is also held back while a request for an application completed
earlier is still settling: the earlier one goes first.

Correctness of the money does not depend on the lease: every step is a guarded update keyed by the aanvraag
id. The lease only keeps the order (and saves work). It is taken only when a request waits, and renewed at
most every third of its term: an idle allocator writes nothing (it used to renew every round, ~2 writes/s).
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
        self._renewed: datetime | None = None  # when this process last took or renewed the lease

    async def _hold(self, now: datetime) -> bool:
        """Hold the lease: renewed when a third of its term has passed since we last took it (the same margin
        the loop in ``round`` allowed before), so a busy allocator writes it about once per 3 s."""
        if self._renewed is not None and timedelta(0) <= now - self._renewed <= self.lease / 3:
            return True
        if not await self.repo.take_lease(LEASE, self.holder, now, now + self.lease):
            self._renewed = None
            return False
        self._renewed = now
        return True

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
                if self._renewed is not None:
                    await asyncio.shield(self.repo.drop_lease(LEASE, self.holder, datetime.now(UTC)))

    async def round(self) -> int:
        """One pass: take (or keep) the lease, then decide what is due. Returns how many were decided."""
        now = datetime.now(UTC)
        pending = await self.repo.pending_requests()
        if not pending:
            return 0  # nothing waits: no lease write
        if not await self._hold(now):
            return 0
        # read before the lease was taken: a request decided since by the previous holder is decided once
        # (every step is guarded), one that arrived since waits for the next round
        due = in_volgorde(pending, now, self.venster)
        decided = 0
        for request_id in due:
            if not await self._hold(datetime.now(UTC)):
                break  # someone else took over (we were too slow): stop, they continue in order
            if await self.handlers.decide(request_id):
                decided += 1
        self.decided += decided
        return decided
