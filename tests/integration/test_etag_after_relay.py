"""The ETag a POST returns stays valid once the relay has published the events of that write (issue 14.3).

The relay used to clear a published outbox with a second write that raised the revision, so the ETag intake had
just returned went stale as soon as the event left, and sending it back as If-Match got a spurious 412. Grants'
budget PUT writes no events (no outbox), so its ETag never had this problem; intake is the service to check.
"""

from __future__ import annotations

import httpx

from servicekit.broker import EVENTS, Broker
from tests.conftest import eventually
from tests.integration.test_intake_http import GGZ_HEADERS, submit


async def _relayed(mongo, namespace: str, aanvraag_id: str) -> None:
    """Wait until the relay has published and cleared the application's outbox."""
    aanvragen = mongo[f"{namespace}ipsflow_intake".replace(".", "_")].aanvragen

    async def cleared() -> bool:
        doc = await aanvragen.find_one({"_id": aanvraag_id}, {"has_outbox": 1})
        return doc is not None and not doc.get("has_outbox")

    await eventually(cleared, timeout=20, what="the relay to publish and clear the outbox")


async def test_the_etag_of_a_post_is_accepted_as_if_match_after_its_events_were_published(
        service, settings_for, mongo, namespace):
    # Something must take intake's events (publishing is mandatory), else the relay holds them and never clears.
    broker = Broker(settings_for("test-listener"))
    await broker.connect()
    try:
        channel = await broker.new_channel(prefetch=100)
        queue = await channel.declare_queue(broker.name("test-events"), durable=True,
                                            arguments={"x-queue-type": "quorum"})
        await queue.bind(broker.name(EVENTS), routing_key="#")
        intake = service("intake").start()

        created = submit(intake.url)
        assert created.status_code == 201, created.text
        aanvraag_id = created.json()["id"]
        etag = created.headers["ETag"]
        await _relayed(mongo, namespace, aanvraag_id)
        url = f"{intake.url}/api/v1/aanvragen/{aanvraag_id}"
        assert httpx.get(url, headers=GGZ_HEADERS, timeout=10).headers["ETag"] == etag

        withdrawn = httpx.post(f"{url}/intrekking", headers={**GGZ_HEADERS, "If-Match": etag}, timeout=10)
        assert withdrawn.status_code == 200, withdrawn.text
        etag = withdrawn.headers["ETag"]
        await _relayed(mongo, namespace, aanvraag_id)  # the ingetrokken event went out, its entry is cleared
        assert httpx.get(url, headers=GGZ_HEADERS, timeout=10).headers["ETag"] == etag
        # A withdrawal sent again is answered with the application as it is: the precondition must hold for that.
        again = httpx.post(f"{url}/intrekking", headers={**GGZ_HEADERS, "If-Match": etag}, timeout=10)
        assert again.status_code == 200, again.text
        stale = httpx.post(f"{url}/intrekking", headers={**GGZ_HEADERS, "If-Match": '"1"'}, timeout=10)
        assert stale.status_code == 412  # a version that really is gone still fails
    finally:
        await broker.close()
