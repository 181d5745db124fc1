"""Reading queue depths from the RabbitMQ management API's queue list (shared by the CLI and the console)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class QueueDepth:
    """A consumer queue with its parking lot (``<queue>.dlq``, if declared) and what waits in its retry tiers."""

    queue: dict[str, Any]
    dlq: dict[str, Any] | None
    retrying: int


def queue_depths(raw: list[dict[str, Any]], namespace: str = "") -> Iterator[QueueDepth]:
    """The consumer queues of ``namespace`` in ``raw`` (parking lots and retry tiers folded into their queue)."""
    by_name = {q["name"]: q for q in raw}
    for q in raw:
        name: str = q["name"]
        if not name.startswith(namespace) or name.endswith(".dlq") or ".retry." in name:
            continue
        retrying = sum(int(v.get("messages", 0)) for k, v in by_name.items() if k.startswith(f"{name}.retry."))
        yield QueueDepth(q, by_name.get(f"{name}.dlq"), retrying)
