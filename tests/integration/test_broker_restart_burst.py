"""1,000 submissions while RabbitMQ is stopped and restarted: each reaches the consumer exactly once."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import date

import httpx

from tests.conftest import eventually
from tests.support.ips import application, ggz

TOTAL = 1_000


async def test_burst_survives_broker_restart_exactly_once(service, infra, mongo, namespace):
    service("notifications").start()
    intake = service("intake").start()
    accepted: list[str] = []
    restart_done = threading.Event()

    def restart_when_busy() -> None:
        while len(accepted) < TOTAL // 4:
            time.sleep(0.01)
        infra.restart_broker(down_seconds=3)
        restart_done.set()

    restarter = threading.Thread(target=restart_when_busy, daemon=True)
    restarter.start()
    start = date(2026, 12, 1).isoformat()
    token = ggz()
    async with httpx.AsyncClient(base_url=intake.url, timeout=30) as client:
        sem = asyncio.Semaphore(16)

        async def submit(i: int) -> None:
            body = application(clientReferentie=f"B-{i:05d}", gewensteStartdatum=start)
            async with sem:
                response = await client.post("/api/v1/aanvragen", json=body, headers=token)
            assert response.status_code == 201, response.text
            accepted.append(response.json()["id"])

        await asyncio.gather(*(submit(i) for i in range(TOTAL)))
    await asyncio.to_thread(restarter.join, 120)
    assert restart_done.is_set(), "the broker restart happened during the burst"
    assert len(set(accepted)) == TOTAL

    dossiers = mongo[f"{namespace}ipsflow_notifications".replace(".", "_")].dossiers

    async def all_arrived() -> bool:
        return await dossiers.count_documents({}) >= TOTAL
    await eventually(all_arrived, timeout=240, interval=1, what=f"{TOTAL} dossiers in the consumer's database")
    await asyncio.sleep(2)  # give any duplicate publication time to arrive before counting effects
    docs = await dossiers.find({}, {"berichten": 1}).to_list(None)
    assert {d["_id"] for d in docs} == set(accepted)
    assert all(d["berichten"] == 1 for d in docs), "every submission has exactly one effect"
