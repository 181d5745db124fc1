"""IPSFLOW_AMQP_URL with the addresses of several RabbitMQ nodes (a cluster, deploy/local/cluster.sh): a process
connects to a node that answers. The failover after a node dies runs in
test_chaos_campaign.py's cluster campaign (make chaos)."""

from __future__ import annotations

import urllib.parse

from servicekit.broker import EVENTS, Broker, amqp_urls
from servicekit.runtime import address_of
from tests.support.processes import free_port


async def test_a_node_that_is_down_is_skipped_and_the_next_address_is_used(settings_for, infra):
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    settings = settings_for("nodes").model_copy(update={"amqp_url": f"{dead}, {infra.amqp_url}"})
    assert amqp_urls(settings.amqp_url) == [dead, infra.amqp_url]
    # an error message names both nodes, without the password
    assert address_of(settings.amqp_url) == f"127.0.0.1:{urllib.parse.urlparse(dead).port}," + address_of(
        infra.amqp_url)
    broker = Broker(settings)
    await broker.connect(handshake_seconds=20)
    try:
        assert broker.is_connected
        connected = broker._connection
        assert connected is not None and connected.url.port == urllib.parse.urlparse(infra.amqp_url).port
        channel = await broker.new_channel(prefetch=1)
        await channel.declare_exchange(broker.name(EVENTS), passive=True)  # declared by connect() on that node
    finally:
        await broker.close()
