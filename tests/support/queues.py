"""What a parking lot (``<queue>.dlq``) holds, and what a consumer acknowledged, exactly, for tests.

Not from a passive declare: RabbitMQ 3.10 answers that for a quorum queue with a count of 0 when its query of the
queue takes over 250 ms (``rabbit_quorum_queue:stat/1``), which a busy broker late in a full run does. Here each
message is taken with a get and all are put back (requeued) at the end. Only for parking lots: they have no
delivery limit, so putting a message back does not count against it (the consumer queues' limit would).
A consumer queue's count of 0 would not say that a message was handled anyway (one delivered and not yet
acknowledged is not counted): the service's own counter of acknowledged messages does.
"""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ipsflow_cli.dlq import peek


async def parked_ids(amqp_url: str, dlq: str) -> list[str]:
    """The message ids in the parking lot ``dlq`` (full name), in queue order; every message stays parked (read
    with ``ipsflow dlq show``'s own peek)."""
    return [row["id"] or "" for row in await peek(amqp_url, dlq.removesuffix(".dlq"), limit=1_000_000)]


def messages_handled(service_url: str, type_: str) -> int:
    """How many messages of this type the service process handled and acknowledged since it started (its
    ``ipsflow_messages_handled_total`` on ``/metrics``)."""
    response = httpx.get(f"{service_url}/metrics", timeout=10)
    response.raise_for_status()
    return int(sum(sample.value for family in text_string_to_metric_families(response.text)
                   for sample in family.samples
                   if sample.name == "ipsflow_messages_handled_total" and sample.labels.get("type") == type_))
