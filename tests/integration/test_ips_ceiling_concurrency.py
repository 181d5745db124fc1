"""1,000 concurrent applications against a ceiling for 100 trajectories, with two grants worker processes:
exactly 100 reservations, never more, whatever the interleaving (Awb 4:25: no over-commitment)."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.ips import PERIODE, IpsSystem, application, ggz

N, ROOM = 1000, 100


# The test waits up to 900 s for the decisions itself; the suite's default 600 s would cut that wait short.
@pytest.mark.timeout(1200)
async def test_1000_concurrent_submissions_give_exactly_100_reservations(service, mongo, namespace):
    grants = [service("grants").start() for _ in range(2)]
    intake = service("intake").start()
    engine = service("process_engine").start()
    ips = IpsSystem(intake=intake.url, grants=grants[0].url, engine=engine.url)
    year = PERIODE
    try:
        await ips.set_ceiling("ips-gemeenten-2023", year, ROOM * 800000)
        gate = asyncio.Semaphore(40)
        token = ggz()

        async def submit(i: int) -> str:
            async with gate:
                return await ips.submit(application(clientReferentie=f"LOAD-{i:05d}"), token)

        started = time.monotonic()
        ids = await asyncio.gather(*(submit(i) for i in range(N)))
        assert len(set(ids)) == N
        requests = mongo[f"{namespace}ipsflow_grants".replace(".", "_")]["reserveringsverzoeken"]
        deadline = time.monotonic() + 900
        decided = 0
        while time.monotonic() < deadline:
            decided = await requests.count_documents({"status": "besloten"})
            if decided == N:
                break
            await asyncio.sleep(2)
        print(f"\n{N} submissions decided in {time.monotonic() - started:.0f} s")
        assert decided == N, f"only {decided} of {N} reservation requests were decided"
        ledger = next(b for b in await ips.budgets() if b["regeling"] == "ips-gemeenten-2023" and b["periode"] == year)
        assert ledger["gereserveerdCents"] + ledger["vastgelegdCents"] == ROOM * 800000
        assert ledger["beschikbaarCents"] == 0
        assert ledger["aantalReserveringen"] == ROOM
        refused = await requests.count_documents({"status": "besloten", "uitkomst.gereserveerd": False})
        assert refused == N - ROOM
    finally:
        await ips.close()
