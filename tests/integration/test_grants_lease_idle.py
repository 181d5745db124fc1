"""Issue 14 item 3: the allocator's lease costs no writes while nothing waits, and is taken when work arrives.

Measured on the lease document's revision (every take or renewal raises it) of a real grants process on the
real FerretDB. Before the change the allocator renewed the lease every round (0.5 s): about 20 writes in 10 s.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from tests.conftest import eventually
from tests.integration.test_grants_commands import _reserveren


def _grants_db(mongo: Any, namespace: str) -> Any:
    return mongo[f"{namespace}ipsflow_grants".replace(".", "_")]


async def test_an_idle_allocator_writes_no_lease_and_takes_it_when_a_request_waits(service, driver, mongo,
                                                                                   namespace):
    service("grants").start()
    leases = _grants_db(mongo, namespace)["leases"]

    async def revision() -> int:
        doc = await leases.find_one({"_id": "allocator"})
        return int(doc["revision"]) if doc else 0

    await asyncio.sleep(1.0)  # past start-up: the allocator runs a round every 0.5 s
    before = await revision()
    await asyncio.sleep(10.0)
    writes = await revision() - before
    print(f"lease writes in 10 s idle: {writes}")
    assert writes == 0

    reply = await driver.call("ips.budget.reserveren.v1", "LEASE-1", _reserveren(
        "LEASE-1", aanvraagdatum="2025-02-03", volledig=datetime(2025, 2, 3, 9, 0, tzinfo=UTC), volgnummer=1),
        timeout=60)  # numbered: the allocator decides it (one without a number is decided at once)
    assert "gereserveerd" in reply.data
    doc = await leases.find_one({"_id": "allocator"})
    assert doc is not None and doc["holder"].startswith("allocator-")  # taken for the request

    async def let_go() -> bool:  # the allocator drops the lease when its walk ends (issue 14 item 4)
        lease = await leases.find_one({"_id": "allocator"})
        return lease is not None and lease["until"] <= datetime.now(UTC)
    await eventually(let_go, timeout=30, what="the lease let go after the decision")
    after_work = await revision()
    await asyncio.sleep(5.0)
    assert await revision() == after_work  # idle again: no renewals
