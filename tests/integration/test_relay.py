"""The outbox relay on the real broker and database: a writer may hand over the document it wrote, and a stale
hand-over (the document was written again since) still publishes every event exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aio_pika

from servicekit.broker import EVENTS, Broker
from servicekit.envelope import new_event
from servicekit.relay import OutboxRelay
from servicekit.settings import ServiceSettings
from servicekit.store import DocumentStore
from tests.conftest import eventually


async def _listening(settings: ServiceSettings, probe: str, prefetch: int,
                     broker_class: type[Broker] = Broker) -> tuple[Broker, aio_pika.abc.AbstractQueue, list[str]]:
    """A connected broker for the relay, and a queue ``probe`` bound to ips.test.# that records the id of each
    event it receives, in the order received."""
    broker = broker_class(settings)
    await broker.connect()
    channel = await broker.new_channel(prefetch=prefetch)
    queue = await channel.declare_queue(broker.name(probe), durable=True, arguments={"x-queue-type": "quorum"})
    await queue.bind(broker.name(EVENTS), routing_key="ips.test.#")
    received: list[str] = []

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        received.append(json.loads(message.body)["id"])
        await message.ack()

    await queue.consume(on_message)
    return broker, queue, received


async def _stop(task: asyncio.Task[None], broker: Broker) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await broker.close()


async def test_stale_handed_over_document_still_publishes_every_event_once(settings_for, mongo, namespace):
    settings = settings_for("relaytest", relay_poll_seconds=60.0)  # no poll: only wakes may publish
    broker, _, received = await _listening(settings, "relay-probe", prefetch=10)
    store = DocumentStore(mongo[f"{namespace}relaytest".replace(".", "_")], "zaken")
    first = new_event("ips.test.eerste.v1", service="test", subject="z-1", event_id="e-1")
    second = new_event("ips.test.tweede.v1", service="test", subject="z-1", event_id="e-2")
    relay = OutboxRelay(broker, [store.collection])
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.5)  # the start-up scan has run and found nothing; from now on only wakes publish
        written = await store.insert({"_id": "z-1", "stap": 1}, [(first, EVENTS)])
        await store.replace({**written, "stap": 2}, [(second, EVENTS)])  # written again before the relay ran
        relay.wake("z-1", store.collection, written=written)  # hands over the stale first version

        async def both() -> bool:
            doc = await store.get("z-1")
            return sorted(set(received)) == ["e-1", "e-2"] and doc is not None and not doc["has_outbox"]

        await eventually(both, timeout=15, what="both events published and the outbox empty")
        await asyncio.sleep(1)
        assert sorted(received) == ["e-1", "e-2"]
    finally:
        await _stop(task, broker)


async def test_a_batch_with_documents_written_since_clears_every_outbox_and_publishes_each_event_once(
        settings_for, mongo, namespace):
    """The relay clears outboxes many documents per command; the ones written meanwhile miss their revision
    check, are read again, and their new events still go out."""
    settings = settings_for("relaybatch", relay_poll_seconds=60.0)
    broker, _, received = await _listening(settings, "relay-batch-probe", prefetch=200)
    store = DocumentStore(mongo[f"{namespace}relaybatch".replace(".", "_")], "zaken")
    relay = OutboxRelay(broker, [store.collection])
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.5)
        written = {}
        for i in range(100):
            event = new_event("ips.test.eerste.v1", service="test", subject=f"z-{i}", event_id=f"a-{i}")
            written[i] = await store.insert({"_id": f"z-{i}", "stap": 1}, [(event, EVENTS)])
        for i in range(0, 100, 3):  # written again before the relay ran: its hand-over is stale
            event = new_event("ips.test.tweede.v1", service="test", subject=f"z-{i}", event_id=f"b-{i}")
            await store.replace({**written[i], "stap": 2}, [(event, EVENTS)])
        for i in range(100):
            relay.wake(f"z-{i}", store.collection, written=written[i])
        expected = sorted([f"a-{i}" for i in range(100)] + [f"b-{i}" for i in range(0, 100, 3)])

        async def all_out() -> bool:
            left = await store.collection.count_documents({"has_outbox": True})
            return sorted(set(received)) == expected and left == 0

        await eventually(all_out, timeout=30, what="every event published and every outbox empty")
        await asyncio.sleep(1)
        assert sorted(received) == expected  # nothing twice
        assert relay.published == len(expected)
    finally:
        await _stop(task, broker)


async def test_an_event_the_broker_refuses_holds_back_only_its_own_document(settings_for, mongo, namespace):
    """One document has an event nobody is bound to (the broker returns it: mandatory). The other documents'
    events still go out once each, in outbox order per document, and their outboxes are cleared; the refused
    event stays in its outbox and goes out as soon as a queue is bound for it."""
    settings = settings_for("relayrefused", relay_poll_seconds=60.0)
    broker, queue, received = await _listening(settings, "relay-refused-probe", prefetch=200)
    store = DocumentStore(mongo[f"{namespace}relayrefused".replace(".", "_")], "zaken")
    relay = OutboxRelay(broker, [store.collection])
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.5)
        bad_events = [new_event("ips.test.eerste.v1", service="test", subject="z-bad", event_id="bad-1"),
                      new_event("ips.nobody.v1", service="test", subject="z-bad", event_id="bad-2"),
                      new_event("ips.test.derde.v1", service="test", subject="z-bad", event_id="bad-3")]
        bad = await store.insert({"_id": "z-bad"}, [(event, EVENTS) for event in bad_events])
        relay.wake("z-bad", store.collection, written=bad)
        expected: list[str] = ["bad-1"]
        for i in range(20):
            events = [new_event(f"ips.test.stap{n}.v1", service="test", subject=f"z-{i}", event_id=f"e-{i}-{n}")
                      for n in range(3)]
            expected += [event.id for event in events]
            written = await store.insert({"_id": f"z-{i}"}, [(event, EVENTS) for event in events])
            relay.wake(f"z-{i}", store.collection, written=written)

        async def others_out() -> bool:
            left = await store.collection.count_documents({"has_outbox": True})
            return sorted(set(received)) == sorted(expected) and left == 1

        await eventually(others_out, timeout=30, what="every other document's events out and its outbox empty")
        await asyncio.sleep(2)  # the refused document is retried meanwhile
        assert sorted(received) == sorted(expected)  # nothing twice, the refused one not yet
        for i in range(20):
            mine = [event_id for event_id in received if event_id.startswith(f"e-{i}-")]
            assert mine == [f"e-{i}-0", f"e-{i}-1", f"e-{i}-2"]  # outbox order
        held = await store.get("z-bad")
        assert held is not None and held["has_outbox"]
        assert [entry["id"] for entry in held["outbox"]] == ["bad-2", "bad-3"]  # the confirmed one is removed
        assert relay.held == 1

        # The held document has its own backoff: new documents' events leave at once, not after it.
        loop = asyncio.get_running_loop()
        delays: list[float] = []
        for n in range(4):
            late = new_event("ips.test.laat.v1", service="test", subject=f"z-late-{n}", event_id=f"late-{n}")
            written = await store.insert({"_id": f"z-late-{n}"}, [(late, EVENTS)])
            woken_at = loop.time()
            relay.wake(f"z-late-{n}", store.collection, written=written)

            async def late_out(event_id: str = late.id) -> bool:
                return event_id in received

            await eventually(late_out, timeout=15, what="a new document's event out while another is held")
            delays.append(loop.time() - woken_at)
            await asyncio.sleep(0.7)
        # The old relay, which backed off as a whole, took 1.0, 3.2, 7.3 and 9.4 s here.
        assert max(delays) < 2.0, f"a held document delays the others: {[round(d, 2) for d in delays]}"
        expected += [f"late-{n}" for n in range(4)]
        assert sorted(received) == sorted(expected)

        await queue.bind(broker.name(EVENTS), routing_key="ips.nobody.#")  # now someone listens

        async def bad_out() -> bool:
            doc = await store.get("z-bad")
            return doc is not None and not doc["has_outbox"] and "bad-3" in received

        await eventually(bad_out, timeout=30, what="the refused events out once a queue is bound")
        assert received.count("bad-2") == 1 and received.count("bad-1") == 1
        assert received.index("bad-2") < received.index("bad-3")
        assert relay.held == 0
    finally:
        await _stop(task, broker)


async def test_the_scan_reaches_past_a_page_of_refused_documents_and_into_the_next_collection(
        settings_for, mongo, namespace):
    """Left behind by an earlier process (no wake): in the first collection more refused documents than one
    page holds, sorted before good ones; in the second collection good ones. One start-up scan relays every good
    document; the refused ones stay in their outboxes."""
    settings = settings_for("relayscan", relay_poll_seconds=60.0)  # only the start-up scan
    broker, _, received = await _listening(settings, "relay-scan-probe", prefetch=100)
    database = mongo[f"{namespace}relayscan".replace(".", "_")]
    first, second = DocumentStore(database, "eerste"), DocumentStore(database, "tweede")
    for i in range(7):
        refused = new_event("ips.nobody.v1", service="test", subject=f"a-bad-{i}", event_id=f"bad-{i}")
        await first.insert({"_id": f"a-bad-{i}"}, [(refused, EVENTS)])
    expected: list[str] = []
    for store, prefix in ((first, "b-ok"), (second, "c-ok")):
        for i in range(4):
            event = new_event("ips.test.gevonden.v1", service="test", subject=f"{prefix}-{i}",
                              event_id=f"{prefix}-{i}")
            expected.append(event.id)
            await store.insert({"_id": f"{prefix}-{i}"}, [(event, EVENTS)])
    relay = OutboxRelay(broker, [first.collection, second.collection], batch=5)
    task = asyncio.create_task(relay.run())
    try:
        async def good_out() -> bool:
            return sorted(set(received)) == sorted(expected)

        await eventually(good_out, timeout=15, what="every good document found by the scan and relayed")

        async def cleared() -> bool:  # the relay clears a little later (relay_clear_after_seconds)
            return (await first.collection.count_documents({"has_outbox": True}) == 7
                    and await second.collection.count_documents({"has_outbox": True}) == 0)

        await eventually(cleared, timeout=15, what="the good documents' outboxes cleared, the refused ones kept")
        await asyncio.sleep(1)
        assert sorted(received) == sorted(expected)
        assert relay.held == 7
    finally:
        await _stop(task, broker)


async def test_the_before_clear_hook_runs_after_the_confirm_and_before_the_outbox_is_cleared(
        settings_for, mongo, namespace, monkeypatch):
    """The seam the crash tests use (tests/support/faults.py): the broker has the event, the outbox still has it."""
    settings = settings_for("relayhook", relay_poll_seconds=60.0)
    broker, _, _received = await _listening(settings, "relay-hook-probe", prefetch=10)
    store = DocumentStore(mongo[f"{namespace}relayhook".replace(".", "_")], "zaken")
    seen: list[tuple[list[str], bool]] = []

    async def before_clear(published: set[str]) -> None:
        doc = await store.get("z-hook")
        assert doc is not None
        seen.append((sorted(published), doc["has_outbox"]))

    monkeypatch.setattr(OutboxRelay, "before_clear", before_clear)
    relay = OutboxRelay(broker, [store.collection])
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.5)  # the start-up scan has run and found nothing; from now on only the wake publishes
        event = new_event("ips.test.haak.v1", service="test", subject="z-hook", event_id="e-haak")
        written = await store.insert({"_id": "z-hook"}, [(event, EVENTS)])
        relay.wake("z-hook", store.collection, written=written)

        async def cleared() -> bool:
            doc = await store.get("z-hook")
            return doc is not None and not doc["has_outbox"]

        await eventually(cleared, timeout=15, what="the outbox cleared after the hook")
        assert seen[0] == (["e-haak"], True), seen
    finally:
        await _stop(task, broker)


class _CancelledOnce(Broker):
    """The real broker, except that the first publish is cancelled under the relay, as aiormq may cancel a confirm
    it waits for when the channel closes with the connection."""

    cancelled = False

    async def publish_raw(self, *args: Any, **kwargs: Any) -> None:
        if not self.cancelled:
            self.cancelled = True
            raise asyncio.CancelledError()
        await super().publish_raw(*args, **kwargs)


async def test_a_publish_cancelled_under_the_relay_is_an_outage_not_the_end_of_the_relay(settings_for, mongo,
                                                                                         namespace):
    """Seen once with connections cut mid-request (tests/integration/test_connection_cuts.py): the engine's relay
    went quiet with outboxes left."""
    settings = settings_for("cutrelay", relay_poll_seconds=60.0)
    broker, _, received = await _listening(settings, "cutrelay-probe", prefetch=10, broker_class=_CancelledOnce)
    store = DocumentStore(mongo[f"{namespace}cutrelay".replace(".", "_")], "zaken")
    relay = OutboxRelay(broker, [store.collection])
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.5)  # the start-up scan found nothing
        event = new_event("ips.test.verbinding.v1", service="test", subject="z-1", event_id="e-1")
        await store.insert({"_id": "z-1"}, [(event, EVENTS)])
        relay.wake("z-1", store.collection)

        async def published() -> bool:
            doc = await store.get("z-1")
            return received == ["e-1"] and doc is not None and not doc["has_outbox"]

        await eventually(published, timeout=20, what="the event published after the cancelled attempt")
        assert isinstance(broker, _CancelledOnce) and broker.cancelled and not task.done()
    finally:
        await _stop(task, broker)


async def test_a_slow_idle_scan_spaces_the_next_one_out_by_thirty_times_its_duration(settings_for, mongo,
                                                                                     namespace):
    """On FerretDB v1 a scan decodes every document: 7.4 s for 22,000 aanvragen in issue 14's history run, and the
    idle relay scanned every 5 s, so it never stopped. A scan that takes 0.1 s here waits 3 s for the next one,
    though ``relay_poll_seconds`` is 0.05; an outbox written meanwhile without a wake is still found by it."""
    settings = settings_for("relayspacing", relay_poll_seconds=0.05)
    broker, _, received = await _listening(settings, "relayspacing-probe", prefetch=10)
    store = DocumentStore(mongo[f"{namespace}relayspacing".replace(".", "_")], "zaken")
    relay = OutboxRelay(broker, [store.collection])
    scans: list[float] = []
    scan = relay._scan_collections

    async def slow_scan() -> None:
        scans.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.1)
        await scan()

    relay._scan_collections = slow_scan  # type: ignore[method-assign]
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(1.5)
        assert len(scans) == 1, scans  # the start-up scan only; without the spacing about 10 by now
        # written behind the relay's back (no wake): the next idle scan, 3 s after the first, publishes it
        await store.insert({"_id": "z-1"}, [(new_event("ips.test.gemist.v1", service="test", subject="z-1",
                                                       event_id="m-gemist"), EVENTS)])

        async def found() -> bool:
            return "m-gemist" in received

        await eventually(found, timeout=10, what="the event found by the next idle scan")
        assert len(scans) == 2 and scans[1] - scans[0] >= 3.0, scans
    finally:
        await _stop(task, broker)
