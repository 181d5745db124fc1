"""Benchmark: what one database command and one broker message cost on this machine, and the floor they put
under issue 14's CPU per case. Prints figures; not a test.

Issue 14 asks for 150 ms of CPU per case, all processes together. A case is a number of database commands and
broker messages (``bench_ips.py`` counts them), and each has a price that no code of ours can lower: the server's
CPU for it (FerretDB, RabbitMQ) and the Python client's (PyMongo, aio-pika) in the service that sends it. This
measures those prices one kind at a time, on a stack of its own (as ``bench_ips.py``) or on the local stack:

* database: ``find_one`` by ``_id`` of a small document; ``update_one`` ``$set`` by ``_id``; the revision-checked
  ``replace_one`` of a 12 KB document with a packed body (what the engine writes about ten times per case);
  ``insert_one`` of a small document. Each with ``--n`` commands, one after the other from ``--concurrency``
  tasks (the services keep several in flight).
* broker: persistent messages published with publisher confirms into a durable topic exchange, routed to a
  quorum queue, consumed and acknowledged by a consumer with prefetch 50 (servicekit's settings, design.md).

CPU per command or message: the server process's (``/proc/<pid>/stat``) and this process's (the client), from the
first to the last of them. The floor per case is then ``reads x find + writes x (mix of the write kinds) +
messages x message``, with the counts of a case given by ``--reads/--writes/--messages`` (defaults: bench_ips,
session 14).

    PYTHONPATH=.:services .venv/bin/python tests/perf/bench_units.py [--n 2000] [--stack own|shared]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
from bson import Binary
from pymongo import AsyncMongoClient

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "services")]

from tests.perf.bench_ips import Stack, cpu_seconds, own_stack, shared_stack  # noqa: E402

#: Per case in bench_ips (session 14, 80 cases, the system's own counts): commands and messages.
CASE_READS, CASE_WRITES, CASE_MESSAGES = 36, 58, 18


def measured(server_pid: int | None) -> Callable[[Callable[[], Awaitable[int]]], Awaitable[tuple[float, float]]]:
    """Runs a batch and returns (server CPU ms, client CPU ms) per item of it."""

    async def run(batch: Callable[[], Awaitable[int]]) -> tuple[float, float]:
        server0 = cpu_seconds(server_pid) if server_pid else 0.0
        client0 = time.process_time()
        items = await batch()
        server = (cpu_seconds(server_pid) - server0) if server_pid else float("nan")
        return server * 1000 / items, (time.process_time() - client0) * 1000 / items

    return run


async def database(stack: Stack, n: int, concurrency: int) -> dict[str, tuple[float, float]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.infra.mongo_url, maxPoolSize=8, tz_aware=True)
    db = client[f"benchunits_{uuid.uuid4().hex[:8]}"]
    run = measured(stack.pids.get("FerretDB"))
    small = {"status": "open", "bedrag_cents": 800_000, "gemeente": "0957", "revision": 1}
    body = Binary(os.urandom(11_000))  # a packed body: one binary, as the engine stores its instances
    ids = [f"d-{i}" for i in range(n)]
    out: dict[str, tuple[float, float]] = {}

    async def spread(op: Callable[[str], Awaitable[Any]]) -> int:
        async def worker(k: int) -> None:
            for i in range(k, n, concurrency):
                await op(ids[i])
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        return n

    try:
        await db.small.insert_one({"_id": "warm", **small})
        await db.big.insert_one({"_id": "warm", "revision": 1, "body": body})
        out["insert_one (small)"] = await run(lambda: spread(lambda i: db.small.insert_one({"_id": i, **small})))
        await db.big.insert_many([{"_id": i, "revision": 1, "body": body, "status": "running"} for i in ids])
        out["find_one by _id (small)"] = await run(lambda: spread(lambda i: db.small.find_one({"_id": i})))
        out["update_one $set by _id (small)"] = await run(lambda: spread(
            lambda i: db.small.update_one({"_id": i}, {"$set": {"status": "besloten"}})))
        out["replace_one {_id, revision} (12 KB)"] = await run(lambda: spread(
            lambda i: db.big.replace_one({"_id": i, "revision": 1},
                                         {"revision": 2, "body": body, "status": "running"})))
    finally:
        await client.drop_database(db.name)
        await client.close()
    return out


async def broker(stack: Stack, n: int, publishers: int) -> tuple[float, float]:
    connection = await aio_pika.connect_robust(stack.infra.amqp_url)
    name = f"benchunits.{uuid.uuid4().hex[:8]}"
    run = measured(stack.pids.get("RabbitMQ"))
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=50)
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        await queue.bind(exchange, routing_key="ips.#")
        done = asyncio.Event()
        seen = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            await message.ack()
            seen += 1
            if seen == n:
                done.set()

        await queue.consume(on_message)
        body = b'{"specversion":"1.0","type":"ips.bench.v1","data":{"x":' + b"1" * 400 + b"}}"

        async def batch() -> int:
            async def publisher(k: int) -> None:
                for i in range(k, n, publishers):
                    await exchange.publish(aio_pika.Message(body, message_id=str(i), content_type="application/json",
                                                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                                           routing_key="ips.bench.v1", mandatory=True)
            await asyncio.gather(*(publisher(k) for k in range(publishers)))
            await asyncio.wait_for(done.wait(), timeout=300)
            return n

        result = await run(batch)
        await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()
        return result
    finally:
        await connection.close()


async def main_async(args: argparse.Namespace) -> None:
    with (own_stack(ROOT) if args.stack == "own" else shared_stack()) as stack:
        print(f"bench_units: {args.n} of each, {args.concurrency} at a time; stack {args.stack} "
              f"({stack.infra.mongo_url}, {stack.infra.amqp_url}); load {os.getloadavg()[0]:.2f}")
        db = await database(stack, args.n, args.concurrency)
        message = await broker(stack, args.n, args.publishers)
    print("  per database command (ms CPU: FerretDB, the PyMongo client):")
    for name, (server, client) in db.items():
        print(f"    {name:38} {server:5.2f}   {client:5.2f}")
    print(f"  per broker message, published with a confirm ({args.publishers} in flight) and consumed with an ack (ms "
          f"CPU: RabbitMQ, the aio-pika client's both sides): {message[0]:.2f}   {message[1]:.2f}")
    writes = [db[k] for k in db if not k.startswith("find")]
    write_server = sum(s for s, _ in writes) / len(writes)
    write_client = sum(c for _, c in writes) / len(writes)
    find_server, find_client = db["find_one by _id (small)"]
    floor = {
        "FerretDB": args.reads * find_server + args.writes * write_server,
        "RabbitMQ": args.messages * message[0],
        "the clients (PyMongo, aio-pika)": args.reads * find_client + args.writes * write_client
        + args.messages * message[1],
    }
    print(f"  the floor per case for {args.reads} reads, {args.writes} writes (the mean of the write kinds above) and "
          f"{args.messages} messages: {sum(floor.values()):.0f} ms CPU ("
          + ", ".join(f"{k} {v:.0f}" for k, v in floor.items())
          + "), before any work of the services themselves (issue 14's goal: 150 ms, all processes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="commands of each kind, and messages")
    parser.add_argument("--concurrency", type=int, default=8, help="database commands in flight")
    parser.add_argument("--publishers", type=int, default=10, help="messages in flight (each waits for its confirm)")
    parser.add_argument("--stack", choices=("own", "shared"), default="own")
    parser.add_argument("--reads", type=float, default=CASE_READS)
    parser.add_argument("--writes", type=float, default=CASE_WRITES)
    parser.add_argument("--messages", type=float, default=CASE_MESSAGES)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
