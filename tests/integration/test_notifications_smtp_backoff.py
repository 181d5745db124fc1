"""Issue 14 item 3: while the SMTP server is away, the sender backs off as a whole (one state per sender, not per
message): the writes are bounded by the server's waits, not multiplied by the waiting messages, and every
message is delivered once the server is back. Real notifications process, real FerretDB, aiosmtpd.

Before the change every waiting message was tried on its own schedule (claim + outcome = 2 writes each time):
12 messages for 8 s cost about 100 writes, as many as the machine could do (figures in README, Performance).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import eventually
from tests.integration.test_notifications_berichten import (  # noqa: F401 (ENGINE_NOW, Driver: the driver fixture's)
    ENGINE_NOW,
    FAST,
    Driver,
    SmtpServer,
    command_data,
    log_of,
)
from tests.support.processes import free_port

N = 12
DOWN_SECONDS = 8.0
WAITS = [1.0, 2.0]  # the retry schedule: the server's waits and each message's alike
PARALLEL = 4  # the sender's default: attempts already under way when the first one finds the server away


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    yield server
    server.stop()


def _berichten(mongo: Any, namespace: str) -> Any:
    return mongo[f"{namespace}ipsflow_notifications".replace(".", "_")]["berichten"]


async def test_smtp_down_costs_writes_per_server_wait_and_every_message_arrives_after(service, driver, smtp, mongo,
                                                                                     namespace):
    notifications = service("notifications", IPSFLOW_SMTP_HOST="127.0.0.1", IPSFLOW_SMTP_PORT=str(smtp.port),
                            **{**FAST, "IPSFLOW_SMTP_BACKOFF_SECONDS": str(WAITS)}).start()  # nothing listens yet
    for i in range(N):
        reply = await driver.reply(await driver.send(f"D-{i}", command_data(f"D-{i}")))
        assert reply.data["status"] == "te_versturen"
    berichten = _berichten(mongo, namespace)

    async def docs() -> list[dict[str, Any]]:
        return await berichten.find({}, {"revision": 1, "outbox": 1, "status": 1}).to_list(None)  # type: ignore[no-any-return]

    async def replies_published() -> bool:  # the relay's writes are not the sender's
        found = await docs()
        return len(found) == N and not any(d.get("outbox") for d in found)
    await eventually(replies_published, what="every reply published")

    start = sum(int(d["revision"]) for d in await docs())  # every write raises a message's revision
    await asyncio.sleep(DOWN_SECONDS)
    writes = sum(int(d["revision"]) for d in await docs()) - start
    # one probe (claim + outcome) per wait of the server, plus the attempts that were under way when the server
    # was found away; per message that would be N times as many
    bound = 2 * (1 + int(DOWN_SECONDS / WAITS[0])) + 2 * PARALLEL
    print(f"writes while SMTP was down {DOWN_SECONDS:.0f} s with {N} messages waiting: {writes} (bound {bound})")
    assert writes <= bound
    assert all(d["status"] in ("te_versturen", "bezig") for d in await docs())

    smtp.start()

    async def all_delivered() -> bool:
        return all(d["status"] == "verzonden" for d in await docs())
    await eventually(all_delivered, timeout=60, what="every message delivered once SMTP is back")
    await asyncio.sleep(1.0)  # a second delivery would have arrived by now
    assert len(smtp.capture.messages) == N
    assert len({m["Message-ID"] for m in smtp.capture.messages}) == N
    for i in range(N):
        (entry,) = log_of(notifications.url, f"D-{i}")
        assert entry["pogingen"][-1]["fout"] is None
