"""Benchmark: IPS cases from submission to beschikking, everything on this machine's cores.

Starts intake, grants, payments, notifications and the process engine as real processes (a fresh namespace on
the local RabbitMQ and FerretDB), submits N complete CMD applications over HTTP, and lets a load generator play
the gemeente official: it polls the work list and grants every assessment task it finds. A case is done when
intake shows it `toegekend` with its decision document. Prints figures; not a test.

    PYTHONPATH=.:services .venv/bin/python tests/perf/bench_ips.py [--cases 100] [--concurrency 20]

Figures: cases per second (first submission to last beschikking), p50/p95 latency per case (submission to
beschikking, including the time the task waited for the load generator), messages published per case (the
namespace's exchanges, from the RabbitMQ management API) and database writes per case (insert + update +
delete + findAndModify commands counted by the server, so everything the services wrote).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import urllib.parse
from datetime import date
from pathlib import Path

import httpx
import pymongo
from tests.support.infra import Infra, discover
from tests.support.ips import ROERMOND, IpsSystem, application, ggz, official
from tests.support.namespaces import temporary_namespace
from tests.support.processes import ServiceProcess

WRITE_COMMANDS = ("insert", "update", "delete", "findAndModify")


def server_writes(mongo_url: str) -> int:
    with pymongo.MongoClient(mongo_url, maxPoolSize=1) as client:
        commands = client.admin.command("serverStatus").get("metrics", {}).get("commands", {})
    return sum(int(commands.get(name, {}).get("total", 0)) for name in WRITE_COMMANDS)


def published(management_url: str, amqp_url: str, namespace: str) -> int:
    vhost = urllib.parse.quote(urllib.parse.urlparse(amqp_url).path.lstrip("/") or "/", safe="")
    total = 0
    with httpx.Client(base_url=management_url, timeout=10) as client:
        for exchange in client.get(f"/api/exchanges/{vhost}").json():
            if exchange["name"].startswith(namespace) and not exchange["name"].endswith("dlx"):
                total += int(exchange.get("message_stats", {}).get("publish_in", 0))
    return total


async def run(cases: int, concurrency: int) -> None:
    infra = discover()
    try:
        with temporary_namespace(infra, "bench") as namespace:
            await _run(infra, namespace, cases, concurrency)
    finally:
        infra.close()


async def _run(infra: Infra, namespace: str, cases: int, concurrency: int) -> None:
    logs = Path(tempfile.mkdtemp(prefix="ipsflow-bench-"))
    processes = [ServiceProcess(p, infra, namespace, logs)
                 for p in ("grants", "intake", "process_engine", "payments", "notifications")]
    ips = IpsSystem(grants=processes[0].url, intake=processes[1].url, engine=processes[2].url)
    roermond = official(ROERMOND)
    submitted: dict[str, float] = {}
    finished: dict[str, float] = {}
    try:
        for proc in processes:
            # notifications mails to a port where nothing listens: its letters stay queued and are retried
            proc.start(IPSFLOW_GRANTS_VERDEELVENSTER_SECONDS="0.5", IPSFLOW_SMTP_HOST="127.0.0.1",
                       IPSFLOW_SMTP_PORT="9")
        writes_before = server_writes(infra.mongo_url)
        gate = asyncio.Semaphore(concurrency)
        token = ggz()

        async def submit(i: int) -> None:
            async with gate:
                t = time.monotonic()
                case_id = await ips.submit(application(clientReferentie=f"BENCH-{i:05d}"), token)
                submitted[case_id] = t

        async def official_at_work() -> None:
            seen: set[str] = set()
            while len(finished) < cases:
                for task in await ips.tasks(roermond):
                    if task["id"] not in seen:
                        seen.add(task["id"])
                        response = await ips.decide(task["id"], roermond, besluit="toekennen", motivering="Akkoord.")
                        if response.status_code != 200:
                            seen.discard(task["id"])
                await asyncio.sleep(0.2)

        async def watch() -> None:
            while len(finished) < cases:
                for case_id in [c for c in submitted if c not in finished]:
                    if (await ips.aanvraag(case_id, token))["status"] == "toegekend":
                        finished[case_id] = time.monotonic()
                await asyncio.sleep(0.5)

        started = time.monotonic()
        worker = asyncio.create_task(official_at_work())
        watcher = asyncio.create_task(watch())
        await asyncio.gather(*(submit(i) for i in range(cases)))
        print(f"submitted {cases} in {time.monotonic() - started:.1f} s", flush=True)
        last_report = time.monotonic()
        while len(finished) < cases:
            await asyncio.sleep(1)
            if time.monotonic() - last_report > 10:
                print(f"  ... {len(finished)}/{cases} beschikkingen", flush=True)
                last_report = time.monotonic()
        elapsed = max(finished.values()) - started
        worker.cancel()
        watcher.cancel()
        latencies = sorted(finished[c] - submitted[c] for c in finished)
        writes = server_writes(infra.mongo_url) - writes_before
        messages = published(infra.management_url, infra.amqp_url, namespace)
        print(f"ipsflow submission → beschikking, {cases} CMD cases, {concurrency} concurrent submitters, "
              f"all services + RabbitMQ + FerretDB on this machine")
        print(f"  throughput:        {cases / elapsed:.2f} cases/s ({elapsed:.1f} s in all)")
        print(f"  latency p50 / p95: {statistics.median(latencies):.2f} s / "
              f"{latencies[int(0.95 * (len(latencies) - 1))]:.2f} s")
        print(f"  messages per case: {messages / cases:.1f} (published on the namespace's exchanges)")
        print(f"  db writes per case: {writes / cases:.1f} (insert/update/delete/findAndModify on the server)")
        budget = next((b for b in await ips.budgets() if b["periode"] == str(date.today().year)), None)
        if budget is not None:
            print(f"  ledger: {budget['vastgelegdCents'] / 100:,.2f} EUR committed for {cases} cases")
    finally:
        await ips.close()
        for proc in processes:
            proc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(args.cases, args.concurrency))


if __name__ == "__main__":
    main()
