"""The outbox relay publishes each event once in normal operation (no crash), also when an outbox holds an event
it already published: a copy a writer handed over after the relay had published from the database (what
bench_servicekit saw: "relay published 301, expected 300"), and the entries a writer that read before the clear
puts back (the clear leaves the revision alone). Real broker and database; the test drives the relay's rounds
itself, so the order of events is fixed (and clears at once: ``relay_clear_after_seconds=0``). Both tests failed
on the code before the relay remembered what it sent."""

from __future__ import annotations

import asyncio

from servicekit.broker import EVENTS, Broker
from servicekit.envelope import new_event
from servicekit.relay import OutboxRelay
from servicekit.store import DocumentStore, Published
from tests.conftest import eventually
from tests.integration.test_relay import _listening


async def _relay(settings_for, mongo, namespace: str, naam: str) -> tuple[Broker, list[str], DocumentStore,
                                                                        OutboxRelay]:
    """A relay that is not running (the test drives its rounds), its store, and the ids a probe receives."""
    settings = settings_for(naam, relay_poll_seconds=60.0, relay_clear_after_seconds=0)
    broker, _, received = await _listening(settings, f"{naam}-probe", prefetch=10)
    store = DocumentStore(mongo[f"{namespace}{naam}".replace(".", "_")], "zaken")
    return broker, received, store, OutboxRelay(broker, [store.collection])


async def test_a_copy_handed_over_after_the_relay_published_from_the_database_is_not_published_again(
        settings_for, mongo, namespace):
    broker, received, store, relay = await _relay(settings_for, mongo, namespace, "relayeenmaal")
    try:
        event = new_event("ips.test.eenmaal.v1", service="test", subject="z-1", event_id="e-1")
        written = await store.insert({"_id": "z-1"}, [(event, EVENTS)])
        relay.wake("z-1", store.collection)  # as a scan would: the relay reads the document itself
        await relay.drain_pending()
        doc = await store.get("z-1")
        assert doc is not None and not doc["has_outbox"]
        relay.wake("z-1", store.collection, written=written)  # the writer hands over its copy only now
        await relay.drain_pending()

        async def arrived() -> bool:
            return bool(received)

        await eventually(arrived, timeout=15, what="the event at the probe")
        await asyncio.sleep(1)  # a second copy would arrive within this
        assert received == ["e-1"], received
        assert relay.published == 1
    finally:
        await broker.close()


async def test_entries_a_writer_puts_back_after_the_clear_are_cleared_without_publishing_them_again(
        settings_for, mongo, namespace):
    broker, received, store, relay = await _relay(settings_for, mongo, namespace, "relayterug")
    try:
        first = new_event("ips.test.eerste.v1", service="test", subject="z-2", event_id="e-1")
        second = new_event("ips.test.tweede.v1", service="test", subject="z-2", event_id="e-2")
        written = await store.insert({"_id": "z-2", "stap": 1}, [(first, EVENTS)])
        relay.wake("z-2", store.collection, written=written)
        await relay.drain_pending()  # e-1 out, the outbox cleared, the revision left alone
        # a writer that read the document before the clear writes after it: its outbox carries e-1 back (a writer
        # in another process, which does not know that e-1 went out; this process's store would leave it out)
        elsewhere = DocumentStore(store.collection.database, "zaken", published=Published())
        stored = await elsewhere.replace({**written, "stap": 2}, [(second, EVENTS)])
        assert [e["id"] for e in stored["outbox"]] == ["e-1", "e-2"]
        relay.wake("z-2", store.collection, written=stored)
        await relay.drain_pending()

        async def both() -> bool:
            return {"e-1", "e-2"} <= set(received)

        await eventually(both, timeout=15, what="both events at the probe")
        await asyncio.sleep(1)
        assert received == ["e-1", "e-2"], received
        assert relay.published == 2
        doc = await store.get("z-2")
        assert doc is not None and doc["outbox"] == [] and not doc["has_outbox"] and doc["stap"] == 2
    finally:
        await broker.close()
