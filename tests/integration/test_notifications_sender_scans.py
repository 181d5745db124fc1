"""The sender knows which messages are due without scanning ``berichten`` for each one (issue 14, FerretDB's CPU).

A filter on ``status`` makes FerretDB v1 decode every stored message, PDF and all; the sender scanned on every new
message and every 2 s poll, which cost FerretDB more than a letter per case and grew with every message ever sent.
Now the handler hands the sender the message's id, a failed attempt's next time stays in the sender's memory, and the
scan runs at start and every ``scan_seconds``. Real FerretDB and a real SMTP sink (aiosmtpd); the sender in this
process so its scans can be counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from notifications.domain import TE_VERSTUREN, VERZONDEN, Herhaalschema
from notifications.mailer import SmtpConfig
from notifications.repository import BerichtenRepository
from notifications.sender import Sender
from tests.conftest import eventually
from tests.integration.test_notifications_berichten import SmtpServer
from tests.support.processes import free_port


class CountingRepository(BerichtenRepository):
    scans = 0

    async def due(self, now: datetime, limit: int = 50) -> list[dict[str, Any]]:
        self.scans += 1
        return await super().due(now, limit)


@pytest.fixture
async def repo(mongo, namespace):
    return CountingRepository(mongo[f"{namespace}sender_scans".replace(".", "_")])


@pytest.fixture
def smtp():
    server = SmtpServer(free_port())
    yield server
    server.stop()


def bericht(now: datetime) -> dict[str, Any]:
    return {"_id": str(uuid.uuid4()), "revision": 1, "status": TE_VERSTUREN, "volgende_poging": now, "teller": 0,
            "claim": None, "lease_tot": None, "aan": [{"naam": "GGZ Noord", "email": "ggz@example.org"}],
            "onderwerp": "Besluit", "tekst": "Geachte heer, mevrouw,", "beschikking_id": str(uuid.uuid4()),
            "pdf": b"%PDF-1.4 " + b"x" * 20_000, "bijlage": "beschikking.pdf"}


def sender(repo: BerichtenRepository, port: int, scan_seconds: float) -> Sender:
    return Sender(repo, SmtpConfig(host="127.0.0.1", port=port, user="", password="", starttls=False,
                                   afzender="noreply@ipsflow.example", timeout=3),
                  Herhaalschema([0.5], 5), lease_seconds=10, poll_seconds=0.2, message_id_domain="ipsflow.example",
                  scan_seconds=scan_seconds)


@contextlib.asynccontextmanager
async def running(s: Sender):
    task = asyncio.create_task(s.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def statuses(repo: BerichtenRepository) -> list[str]:
    return [d["status"] for d in await repo.collection.find({}, {"status": 1}).to_list(None)]


async def test_woken_messages_and_retries_are_sent_without_a_scan_each(repo, smtp):
    s = sender(repo, smtp.port, scan_seconds=3600)
    async with running(s):
        await eventually(lambda: _true(repo.scans == 1), what="the scan at start")
        # SMTP away: the first attempt fails, the retry 0.5 s later comes from the sender's memory
        first = bericht(datetime.now(UTC))
        await repo.collection.insert_one(first)
        s.wake(first["_id"])
        await eventually(lambda: _has_attempts(repo, first["_id"]), what="a failed attempt")
        smtp.start()
        later = [bericht(datetime.now(UTC)) for _ in range(8)]
        for doc in later:
            await repo.collection.insert_one(doc)
            s.wake(doc["_id"])
        await eventually(lambda: _all(repo, VERZONDEN, 9), timeout=30, what="every message sent")
        await asyncio.sleep(1.0)  # a few polls more
    assert repo.scans == 1, f"{repo.scans} scans of berichten for 9 messages (one at start expected)"
    assert len(smtp.capture.messages) == 9


async def test_the_scan_finds_what_no_one_woke_the_sender_for(repo, smtp):
    """A message stored by another process (or before a restart) is found by the scan every scan_seconds."""
    smtp.start()
    s = sender(repo, smtp.port, scan_seconds=1.0)
    async with running(s):
        await eventually(lambda: _true(repo.scans >= 1), what="the scan at start")
        await repo.collection.insert_one(bericht(datetime.now(UTC)))  # no wake
        await eventually(lambda: _all(repo, VERZONDEN, 1), timeout=15, what="the message sent after a scan")
    assert len(smtp.capture.messages) == 1


async def _true(value: bool) -> bool:
    return value


async def _has_attempts(repo: BerichtenRepository, bericht_id: str) -> bool:
    doc = await repo.collection.find_one({"_id": bericht_id})
    return bool(doc and doc.get("pogingen"))


async def _all(repo: BerichtenRepository, status: str, n: int) -> bool:
    found = await statuses(repo)
    return len(found) == n and all(x == status for x in found)


async def test_a_slow_scan_spaces_the_next_one_out_by_thirty_times_its_duration(repo, smtp):
    """With a year of letters one scan took 12.7 s (issue 14's history run); every 30 s that was 40 % of the
    time. A scan that takes 0.1 s here is not repeated within 3 s, though ``scan_seconds`` is 0.05."""
    slow = 0.1
    due = repo.due

    async def slow_due(now: datetime, limit: int = 50) -> list[dict[str, Any]]:
        await asyncio.sleep(slow)
        return await due(now, limit)

    repo.due = slow_due  # type: ignore[method-assign]
    s = sender(repo, smtp.port, scan_seconds=0.05)
    began = datetime.now(UTC)
    while (datetime.now(UTC) - began).total_seconds() < 1.5:
        await s._due(datetime.now(UTC))
        await asyncio.sleep(0.05)
    assert repo.scans == 1  # without the spacing: one scan every 0.05-0.15 s, about ten
    assert s._scan_op is not None and (s._scan_op - began).total_seconds() >= 30 * slow
