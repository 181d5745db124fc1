"""Benchmark: N submissions end to end through servicekit vs the same work on raw aio-pika + PyMongo.

One submission = store a document (with one event) → the event reaches RabbitMQ (persistent, confirmed) →
a consumer (same prefetch on both sides) stores one record per event, idempotently → ack.

* servicekit: ``DocumentStore.insert`` with the event in the outbox, ``OutboxRelay`` publishing it (woken
  after each insert, as intake does), ``Consumer`` running the handler.
* raw: ``insert_one``, then ``exchange.publish`` with publisher confirms, then a plain aio-pika consumer.
  No outbox: this is the floor the outbox pattern is measured against.

Runs against the real local RabbitMQ and MongoDB-wire server (the local stack, or the URLs given), each side
twice, alternating, in a namespace of its own; queues, exchanges and databases are removed afterwards.

    .venv/bin/python tests/perf/bench_servicekit.py [--n 2000] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import pstats
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "services"))

import aio_pika  # noqa: E402
import pymongo  # noqa: E402
from pymongo import AsyncMongoClient  # noqa: E402
from pymongo.errors import DuplicateKeyError  # noqa: E402

from ipsflow_cli.namespaces import Endpoints, delete_namespace, new_namespace  # noqa: E402
from ipsflow_cli.run import local_stack_urls  # noqa: E402
from servicekit.broker import EVENTS, Binding, Broker  # noqa: E402
from servicekit.consumer import Consumer  # noqa: E402
from servicekit.envelope import CloudEvent, new_event  # noqa: E402
from servicekit.logging import configure_logging  # noqa: E402
from servicekit.relay import OutboxRelay  # noqa: E402
from servicekit.settings import ServiceSettings  # noqa: E402
from servicekit.store import DocumentStore, make_client  # noqa: E402

# The local stack's addresses, moved by the same variables as deploy/local/stack.sh.
LOCAL = local_stack_urls()

EVENT_TYPE = "ips.bench.ingediend.v1"
POOL = 8  # FerretDB v1 deadlocks with more than ~100 concurrent operations; stay far below


@dataclass
class Config:
    n: int
    concurrency: int
    prefetch: int
    amqp_url: str
    mongo_url: str
    management_url: str
    run_ns: str


@dataclass
class Result:
    side: str
    seconds: float
    stored_seconds: float  # until every submission's document was stored (the HTTP-visible part)

    def rate(self, n: int) -> float:
        return n / self.seconds


def submission(i: int) -> dict[str, Any]:
    return {
        "_id": f"aanvraag-{i:06d}",
        "gemeente_code": "0363",
        "traject_type": "CMD",
        "volgnummer": i,
        "ontvangen_op": datetime.now(UTC),
    }


async def bounded(n: int, concurrency: int, work: Callable[[int], Awaitable[None]]) -> None:
    """Run ``work(i)`` for i < n with at most ``concurrency`` in flight, like concurrent HTTP requests."""
    next_i = 0

    async def worker() -> None:
        nonlocal next_i
        while next_i < n:
            i = next_i
            next_i += 1
            await work(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def wait_until(done: Callable[[], bool], what: str, limit_s: float = 600.0) -> None:
    deadline = time.perf_counter() + limit_s
    while not done():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"benchmark stalled: {what}")
        await asyncio.sleep(0.002)


# --- servicekit ---------------------------------------------------------------------------------------------


async def run_servicekit(cfg: Config, ns: str) -> Result:
    base = {
        "amqp_url": cfg.amqp_url,
        "mongo_url": cfg.mongo_url,
        "namespace": ns,
        "mongo_pool_size": POOL,
        "prefetch": cfg.prefetch,
        "relay_poll_seconds": 1.0,
    }
    producer_settings = ServiceSettings(service_name="bench_producer", **base)
    consumer_settings = ServiceSettings(service_name="bench_consumer", **base)
    producer_broker, consumer_broker = Broker(producer_settings), Broker(consumer_settings)
    producer_client, consumer_client = make_client(producer_settings), make_client(consumer_settings)
    store = DocumentStore(producer_client[producer_settings.database_name()], "aanvragen")
    records = consumer_client[consumer_settings.database_name()]["records"]

    async def handle(event: CloudEvent) -> None:
        with contextlib.suppress(DuplicateKeyError):  # a redelivery: already recorded
            await records.insert_one(
                {"_id": event.id, "subject": event.subject, "volgnummer": event.data["i"]}
            )

    await producer_broker.connect()
    await consumer_broker.connect()
    consumer = Consumer(consumer_broker, "bench", {EVENT_TYPE: handle}, [Binding(EVENTS, EVENT_TYPE)])
    await consumer.start()
    relay = OutboxRelay(producer_broker, [store.collection])
    relay_task = asyncio.create_task(relay.run())
    await store.collection.find_one({})  # connect before the clock starts
    await records.find_one({})
    try:

        async def submit(i: int) -> None:
            doc = submission(i)
            event = new_event(EVENT_TYPE, service="bench", subject=doc["_id"], data={"i": i})
            stored = await store.insert(doc, [(event, EVENTS)])
            relay.wake(doc["_id"], written=stored)  # as the services do: the relay gets what was written

        started = time.perf_counter()
        await bounded(cfg.n, cfg.concurrency, submit)
        stored = time.perf_counter() - started
        await wait_until(lambda: consumer.handled >= cfg.n, f"servicekit handled {consumer.handled}/{cfg.n}")
        elapsed = time.perf_counter() - started
        count = await records.count_documents({})
        assert count == cfg.n, f"servicekit stored {count} records, expected {cfg.n}"
        assert relay.published == cfg.n, f"relay published {relay.published}, expected {cfg.n}"
        return Result("servicekit", elapsed, stored)
    finally:
        relay_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay_task
        await consumer.stop()
        await producer_broker.close()
        await consumer_broker.close()
        await producer_client.close()
        await consumer_client.close()


# --- raw aio-pika + PyMongo ---------------------------------------------------------------------------------


async def run_raw(cfg: Config, ns: str) -> Result:
    db_prefix = ns.replace(".", "_")
    producer_client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        cfg.mongo_url, maxPoolSize=POOL, tz_aware=True
    )
    consumer_client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        cfg.mongo_url, maxPoolSize=POOL, tz_aware=True
    )
    documents = producer_client[f"{db_prefix}raw_producer"]["aanvragen"]
    records = consumer_client[f"{db_prefix}raw_consumer"]["records"]

    producer_conn = await aio_pika.connect_robust(cfg.amqp_url)
    consumer_conn = await aio_pika.connect_robust(cfg.amqp_url)
    pub_channel = await producer_conn.channel(publisher_confirms=True, on_return_raises=True)
    exchange = await pub_channel.declare_exchange(
        f"{ns}ips.events", aio_pika.ExchangeType.TOPIC, durable=True
    )
    sub_channel = await consumer_conn.channel()
    await sub_channel.set_qos(prefetch_count=cfg.prefetch)
    queue = await sub_channel.declare_queue(f"{ns}bench", durable=True, arguments={"x-queue-type": "quorum"})
    await queue.bind(f"{ns}ips.events", routing_key=EVENT_TYPE)
    handled = 0

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal handled
        body = json.loads(message.body)
        with contextlib.suppress(DuplicateKeyError):
            await records.insert_one(
                {"_id": body["id"], "subject": body["subject"], "volgnummer": body["data"]["i"]}
            )
        await message.ack()
        handled += 1

    tag = await queue.consume(on_message)
    await documents.find_one({})
    await records.find_one({})
    try:

        async def submit(i: int) -> None:
            doc = submission(i)
            body = json.dumps(
                {
                    "specversion": "1.0",
                    "id": str(uuid.uuid4()),
                    "source": "urn:bench",
                    "type": EVENT_TYPE,
                    "subject": doc["_id"],
                    "time": datetime.now(UTC).isoformat(),
                    "datacontenttype": "application/json",
                    "data": {"i": i},
                }
            ).encode()
            await documents.insert_one(doc)
            await exchange.publish(
                aio_pika.Message(
                    body,
                    message_id=doc["_id"],
                    type=EVENT_TYPE,
                    content_type="application/cloudevents+json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=EVENT_TYPE,
                mandatory=True,
            )

        started = time.perf_counter()
        await bounded(cfg.n, cfg.concurrency, submit)
        stored = time.perf_counter() - started
        await wait_until(lambda: handled >= cfg.n, f"raw handled {handled}/{cfg.n}")
        elapsed = time.perf_counter() - started
        count = await records.count_documents({})
        assert count == cfg.n, f"raw stored {count} records, expected {cfg.n}"
        return Result("raw", elapsed, stored)
    finally:
        with contextlib.suppress(Exception):
            await queue.cancel(tag)
        await producer_conn.close()
        await consumer_conn.close()
        await producer_client.close()
        await consumer_client.close()


# --- housekeeping -------------------------------------------------------------------------------------------


def cleanup(cfg: Config) -> tuple[int, int]:
    """Remove every queue, exchange and database of this run (all carry ``cfg.run_ns``)."""
    return delete_namespace(Endpoints(cfg.mongo_url, cfg.management_url, cfg.amqp_url), cfg.run_ns)


def parse_args(argv: list[str] | None = None) -> tuple[Config, bool, int]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2000, help="submissions per measured round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per side, alternating")
    parser.add_argument("--concurrency", type=int, default=16, help="submissions in flight (HTTP requests)")
    parser.add_argument("--prefetch", type=int, default=ServiceSettings().prefetch)
    parser.add_argument("--amqp-url", default=LOCAL["IPSFLOW_AMQP_URL"])
    parser.add_argument("--mongo-url", default=LOCAL["IPSFLOW_MONGO_URL"])
    parser.add_argument("--management-url", default=LOCAL["IPSFLOW_RABBITMQ_MANAGEMENT_URL"].replace("://", "://guest:guest@"))
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the servicekit rounds; print the top"
    )
    args = parser.parse_args(argv)
    cfg = Config(
        args.n,
        args.concurrency,
        args.prefetch,
        args.amqp_url,
        args.mongo_url,
        args.management_url,
        new_namespace("bench"),
    )
    return cfg, args.profile, args.rounds


def describe_server(cfg: Config) -> str:
    """What the figures were measured on: the server's version and, for the local stack, its sync mode."""
    with pymongo.MongoClient(cfg.mongo_url, maxPoolSize=1) as mongo:
        info = mongo.admin.command("buildInfo")
    name = "FerretDB" if "ferretdbVersion" in info else "MongoDB"
    version = info.get("ferretdbVersion") or info.get("version")
    if version == "unknown":  # our embedded build (deploy/ferretdb) carries no version stamp
        version = "v1.24 embedded (deploy/ferretdb)"
    text = f"{name} {version}"
    log = ROOT / ".local" / "log" / "ferretdb.log"
    if name == "FerretDB" and log.exists():
        modes = [line.rsplit("sync ", 1)[1].strip() for line in log.read_text().splitlines()
                 if "ipsflow-ferretdb listening" in line and ", sync " in line]
        if modes:
            text += f" (local stack, SQLite synchronous={modes[-1]})"
    return text


async def main(cfg: Config, profile: bool, rounds: int) -> int:
    configure_logging("bench", "WARNING")
    print(
        f"bench_servicekit: n={cfg.n} concurrency={cfg.concurrency} prefetch={cfg.prefetch} "
        f"mongo pool={POOL} namespace={cfg.run_ns}\nserver: {describe_server(cfg)}",
        flush=True,
    )
    # A short warm-up per side (imports, first connections, queue creation paths) that is not measured.
    warm = Config(**{**cfg.__dict__, "n": min(200, cfg.n)})
    await run_servicekit(warm, f"{cfg.run_ns}wsk.")
    await run_raw(warm, f"{cfg.run_ns}wraw.")
    results: dict[str, list[Result]] = {"servicekit": [], "raw": []}
    profiler = cProfile.Profile() if profile else None
    for r in range(1, rounds + 1):
        if profiler is not None:
            profiler.enable()
        sk = await run_servicekit(cfg, f"{cfg.run_ns}sk{r}.")
        if profiler is not None:
            profiler.disable()
        raw = await run_raw(cfg, f"{cfg.run_ns}raw{r}.")
        for res in (sk, raw):
            results[res.side].append(res)
            print(
                f"round {r} {res.side:<10} {res.rate(cfg.n):8.1f} submissions/s  "
                f"({res.seconds:.2f} s end to end; documents stored after {res.stored_seconds:.2f} s)",
                flush=True,
            )
    best = {side: max(x.rate(cfg.n) for x in rs) for side, rs in results.items()}
    mean = {side: cfg.n * len(rs) / sum(x.seconds for x in rs) for side, rs in results.items()}
    print(f"servicekit: best {best['servicekit']:.1f}/s, mean {mean['servicekit']:.1f}/s")
    print(f"raw:        best {best['raw']:.1f}/s, mean {mean['raw']:.1f}/s")
    ratio = mean["servicekit"] / mean["raw"]
    print(
        f"ratio servicekit/raw (mean): {ratio:.2f}  (best/best {best['servicekit'] / best['raw']:.2f}; "
        f"goal >= 0.70: {'met' if ratio >= 0.7 else 'NOT met'})"
    )
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
        print(out.getvalue())
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    config, want_profile, n_rounds = parse_args()
    try:
        code = asyncio.run(main(config, want_profile, n_rounds))
    finally:
        queues, dbs = cleanup(config)
        print(f"cleanup: removed {queues} queues/exchanges, dropped {dbs} databases", flush=True)
    sys.exit(code)
