"""Connections cut mid-request (issue 17.3): the services reach FerretDB and RabbitMQ through a TCP proxy each
(tests/support/tcp_proxy.py) that, during a burst of IPS cases, cuts connections after a request went through and
before its answer (the server did the work, the service never hears of it), and cuts every open connection.

The services retry or hand the message back to the broker; the campaign's invariants (tests/support/chaos.py's
``check``) must hold: every case once and toegekend, one beschikking, payment order and letter each, the budget
ledger consistent, every queue and DLQ empty, no outbox, no incident. Runs on a RabbitMQ node and FerretDB of its
own, like the chaos campaigns (the proxies never touch the shared stack).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import AutoReconnect

from notifications.domain import BEZIG, TE_VERSTUREN, VERZONDEN
from notifications.repository import BerichtenRepository
from servicekit.broker import COMMANDS, Binding, Broker
from servicekit.consumer import Consumer
from servicekit.envelope import CloudEvent, new_event
from servicekit.store import Document
from tests.conftest import eventually
from tests.support.chaos import Campaign, campaign
from tests.support.queues import parked_ids


@pytest.mark.timeout(600)
def test_connections_to_ferretdb_and_rabbitmq_cut_mid_request_lose_nothing_and_apply_nothing_twice():
    # a steady stream (at most 4 cases in flight), not one burst: a burst of 20 was over in 6 s, before the second
    # turn of the cuts, and every mid-request cut of the broker after it found no request to cut
    outcome = campaign(Campaign(cases=30, replicas=1, concurrency=10, chaos_every=0, cut_every=2.0, min_cuts=8,
                                timeout=300, in_flight=4))
    assert not outcome.violations, outcome.report()
    cuts = [what for _, what in outcome.kills]
    # the faults really happened: requests cut after they reached each server (FerretDB several times; RabbitMQ at
    # least once: its first turn comes while the cases run, a later one may find no request in flight), and whole
    # pools
    for server, least in (("FerretDB", 2), ("RabbitMQ", 1)):
        mid = [what for what in cuts if server in what and "mid-request" in what and not what.startswith("cut 0 ")]
        assert len(mid) >= least, outcome.report()
        assert any(server in what and what.startswith("cut all") and " 0 open" not in what for what in cuts), \
            outcome.report()


async def test_a_claim_whose_answer_is_lost_is_still_the_senders_own(ferretdb_proxy, mongo, namespace):
    """The sender's claim went through but its answer was cut off: the sender finds its own token and sends the
    message now (it used to give up and leave the message claimed until the lease ran out, 5 minutes)."""
    database = f"{namespace}cutclaim".replace(".", "_")
    now = datetime.now(UTC)
    await mongo[database].berichten.insert_one({"_id": "b-1", "revision": 1, "status": TE_VERSTUREN,
                                                "volgende_poging": now - timedelta(seconds=1)})
    client: AsyncMongoClient[Document] = AsyncMongoClient(f"mongodb://127.0.0.1:{ferretdb_proxy.port}/",
                                                          tz_aware=True, maxPoolSize=2)
    try:
        repo = BerichtenRepository(client[database])
        await repo.get("b-1")  # connected: the cut is the claim's update, not the handshake
        ferretdb_proxy.arm(1, match=b"update")
        claimed = await repo.claim("b-1", "token-1", now, now + timedelta(minutes=5))
        assert ferretdb_proxy.cut_mid == 1  # the update reached FerretDB and its answer was dropped
        assert claimed is not None and claimed["claim"] == "token-1" and claimed["status"] == BEZIG
        stored = await mongo[database].berichten.find_one({"_id": "b-1"})
        assert stored is not None and stored["claim"] == "token-1" and stored["revision"] == 2
    finally:
        await client.close()
        await mongo.drop_database(database)


async def test_a_sent_message_whose_record_lost_its_answer_counts_as_sent(ferretdb_proxy, mongo, namespace):
    """SMTP accepted the message and the write of ``verzonden`` went through, but its answer was cut off: the
    sender looks it up and counts it sent (it used to leave the outcome unknown, and the message claimed until the
    lease ran out, when it was sent a second time)."""
    database = f"{namespace}cutsent".replace(".", "_")
    now = datetime.now(UTC)
    await mongo[database].berichten.insert_one({"_id": "b-1", "revision": 2, "status": BEZIG, "claim": "token-1",
                                                "lease_tot": now + timedelta(minutes=5)})
    client: AsyncMongoClient[Document] = AsyncMongoClient(f"mongodb://127.0.0.1:{ferretdb_proxy.port}/",
                                                          tz_aware=True, maxPoolSize=2)
    try:
        repo = BerichtenRepository(client[database])
        await repo.get("b-1")
        ferretdb_proxy.arm(1, match=b"update")
        assert await repo.mark_sent("b-1", "token-1", now, "250 OK") is True
        assert ferretdb_proxy.cut_mid == 1
        stored = await mongo[database].berichten.find_one({"_id": "b-1"})
        assert stored is not None and stored["status"] == VERZONDEN and stored["claim"] is None
        assert len(stored["pogingen"]) == 1 and stored["revision"] == 3  # written once
    finally:
        await client.close()
        await mongo.drop_database(database)


async def test_a_message_whose_database_connection_keeps_failing_is_retried_not_parked(settings_for):
    """A handler that loses its database connection more often than max_attempts allows: the message waits and
    comes back until the database answers (it was parked after max_attempts, its case stuck until a replay)."""
    settings = settings_for("cutconsumer", max_attempts=2)  # retry tiers of 200 and 500 ms
    broker = Broker(settings)
    await broker.connect()
    failures = 0
    handled: list[str] = []

    async def handler(event: CloudEvent) -> None:
        nonlocal failures
        if failures < 4:  # twice max_attempts
            failures += 1
            raise AutoReconnect("127.0.0.1:27017: [Errno 104] Connection reset by peer")
        handled.append(event.id)

    consumer = Consumer(broker, "cutconsumer", {"ips.test.verbinding.v1": handler},
                        [Binding(COMMANDS, "ips.test.verbinding.v1")])
    try:
        await consumer.start()
        await broker.publish(new_event("ips.test.verbinding.v1", service="test", subject="z-1", event_id="m-1"),
                             COMMANDS)
        await eventually(lambda: _true(handled == ["m-1"]), timeout=30, what="the message handled after 4 failures")
        assert await parked_ids(broker.settings.amqp_url, broker.name("cutconsumer.dlq")) == []
        assert failures == 4
    finally:
        await consumer.stop()
        await broker.close()


async def _true(value: bool) -> bool:
    return value

