"""A day of use on one machine (issue 18): test and benchmark runs take namespaces on the broker and give them
back, hundreds of times; afterwards the broker still answers, holds none of their queues, and every service is
ready within 30 s. The sweep removes what a killed run left behind once it is a day old, and nothing younger."""

from __future__ import annotations

import asyncio
import time

import aio_pika
import httpx
import pymongo

from ipsflow_cli.namespaces import DAY, new_namespace, scan, sweep
from tests.support.namespaces import endpoints, remove_namespace, temporary_namespace
from tests.support.processes import ServiceProcess

NAMESPACES = 200  # each with a consumer's queue family: the queue, its parking lot and two retry tiers
SERVICES = ("intake", "grants", "payments", "notifications", "process_engine")


async def _declare_family(channel: aio_pika.abc.AbstractChannel, ns: str) -> None:
    """What Broker.declare_consumer_queue leaves on the broker for one consumer: quorum queues and the exchanges."""
    dlx = await channel.declare_exchange(f"{ns}ips.dlx", aio_pika.ExchangeType.DIRECT, durable=True)
    await channel.declare_exchange(f"{ns}ips.events", aio_pika.ExchangeType.TOPIC, durable=True)
    q = f"{ns}intake"
    await channel.declare_queue(f"{q}.dlq", durable=True, arguments={"x-queue-type": "quorum"})
    await channel.declare_queue(q, durable=True, arguments={
        "x-queue-type": "quorum", "x-dead-letter-exchange": dlx.name, "x-dead-letter-routing-key": f"{q}.dlq"})
    for tier, delay in enumerate((200, 500), start=1):
        await channel.declare_queue(f"{q}.retry.{tier}", durable=True, arguments={
            "x-queue-type": "quorum", "x-message-ttl": delay, "x-dead-letter-exchange": dlx.name,
            "x-dead-letter-routing-key": q})


def _queue_names(infra) -> set[str]:
    with endpoints(infra).management() as client:
        response = client.get(f"/api/queues/{endpoints(infra).vhost}", params={"columns": "name"})
        response.raise_for_status()
        return {q["name"] for q in response.json()}


async def test_hundreds_of_namespaces_up_and_down_then_every_service_is_ready_within_30_s(infra, service):
    taken: list[str] = []
    connection = await aio_pika.connect(infra.amqp_url, timeout=30)
    started = time.monotonic()
    try:
        gate = asyncio.Semaphore(8)

        async def one_run() -> None:
            async with gate:
                channel = await connection.channel()
                # The same helper the tests, benchmarks and e2e tests use: taken, used, given back.
                with temporary_namespace(infra, "t") as ns:
                    taken.append(ns)
                    await _declare_family(channel, ns)
                    await channel.close()

        await asyncio.gather(*(one_run() for _ in range(NAMESPACES)))
    finally:
        await connection.close()
    churn_seconds = time.monotonic() - started
    assert len(set(taken)) == NAMESPACES
    left = {name for name in _queue_names(infra) if name.startswith(tuple(taken))}
    assert not left, f"queues of finished namespaces stayed on the broker: {sorted(left)[:5]}"

    # The broker still answers the AMQP handshake at once, and the whole system starts against it.
    probe = await aio_pika.connect(infra.amqp_url, timeout=5)
    await probe.close()
    began = time.monotonic()
    processes = [service(package).start(wait=False) for package in SERVICES]
    ready_after = await _ready_times(processes, began, limit=60)
    print(f"\n{NAMESPACES} namespaces ({4 * NAMESPACES} quorum queues) up and down in {churn_seconds:.1f} s; "
          f"ready after (s): {ready_after}")
    slow = {p.package: ready_after.get(p.package) for p in processes if ready_after.get(p.package, 99) > 30}
    assert not slow, f"not ready within 30 s: {slow}; logs:\n" + "\n".join(
        f"--- {p.package}\n{_log_tail(p)}" for p in processes if p.package in slow)
    for proc in processes:
        body = httpx.get(f"{proc.url}/ready", timeout=5).json()
        assert body["status"] == "ready" and body["checks"]["rabbitmq"] and body["checks"]["mongodb"], body


async def _ready_times(processes: list[ServiceProcess], began: float, limit: float) -> dict[str, float]:
    """Seconds from ``began`` until each process answered /ready with 200 (absent: not within ``limit``)."""
    ready: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=2) as client:
        while len(ready) < len(processes) and time.monotonic() - began < limit:
            for proc in processes:
                if proc.package in ready:
                    continue
                assert proc.proc is not None and proc.proc.poll() is None, f"{proc.package} exited\n{_log_tail(proc)}"
                try:
                    if (await client.get(f"{proc.url}/ready")).status_code == 200:
                        ready[proc.package] = round(time.monotonic() - began, 1)
                except httpx.HTTPError:
                    pass
            await asyncio.sleep(0.2)
    return ready


def _log_tail(proc: ServiceProcess, lines: int = 15) -> str:
    path = proc.log_dir / f"{proc.package}-{proc.port}.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


async def test_the_sweep_removes_an_aged_leftover_and_keeps_a_fresh_namespace(infra, tmp_path):
    aged = new_namespace("t", now=time.time() - DAY - 3600)  # what a run killed yesterday left
    fresh = new_namespace("t")  # what a run that is busy right now holds
    connection = await aio_pika.connect(infra.amqp_url, timeout=30)
    try:
        channel = await connection.channel()
        for ns in (aged, fresh):
            await _declare_family(channel, ns)
    finally:
        await connection.close()
    with pymongo.MongoClient(infra.mongo_url) as mongo:
        for ns in (aged, fresh):
            mongo[f"{ns}ipsflow_intake".replace(".", "_")].aanvragen.insert_one({"_id": "a"})
    try:
        removed = await asyncio.to_thread(sweep, endpoints(infra), DAY, tmp_path / "seen.json")
        assert aged in {ns.key for ns in removed}
        assert fresh not in {ns.key for ns in removed}
        remaining = {ns.key: ns for ns in await asyncio.to_thread(scan, endpoints(infra))}
        assert aged not in remaining
        assert len(remaining[fresh].queues) == 4 and len(remaining[fresh].databases) == 1
        with pymongo.MongoClient(infra.mongo_url) as mongo:
            assert f"{aged}ipsflow_intake".replace(".", "_") not in mongo.list_database_names()
    finally:
        for ns in (aged, fresh):
            remove_namespace(infra, ns)
