"""Benchmark (issue 14): the work list and the task lookup as history grows, before and after the read models.

For each checkout (``--before DIR``, e.g. a ``git worktree`` of 91e82d2, and this one) in a namespace of its own
on the local stack: seed a gemeente (0957) with ``--open`` cases waiting at the official's task and ``--closed``
closed cases overall, start that checkout's process engine, and time over HTTP
- the work list call of an official of 0957 (``GET /taken?pageSize=<open>``: the whole list in one page);
- the task lookup (``GET /taken/{id}``) and the decision (``POST /taken/{id}/afronden``) of ``--decide`` tasks.
Prints p50/p95 per figure, both checkouts side by side. Not a test.

The seeding (a documented fast path that writes exactly what the services would): the open cases are real IPS
cases of ``bpmn/ips_traject.bpmn``, driven by that checkout's own Engine in this process (its writes, read models
included) with the replies of tests/bpmn/test_ips_traject.py up to the official's task, their outboxes then
cleared as the relay would. The closed cases are copies of one case refused by grants' reservation and driven to
its end the same way: the document that engine wrote, under 20,000 ids (a closed case's document is never written
again, so a copy is exactly what it would hold, except its id).

    .venv/bin/python tests/perf/bench_worklist.py --before /tmp/h4-old [--open 200] [--closed 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the checkout's root holds the tests package
    sys.path.insert(1, str(Path(__file__).resolve().parents[2]))

ROOT = Path(__file__).resolve().parents[2]
GEMEENTE = "0957"
MANDATES = ("toekenning", "afwijzing", "verdaging")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --------------------------------------------------------------------------- child: one checkout


async def drive(engine: Any, case_id: str, data: dict[str, Any], replies: dict[str, Any]) -> dict[str, Any]:
    """Start an IPS case and answer its commands until it waits for the official or has ended."""
    from process_engine.engine import COMMAND_COMPLETED
    from servicekit.envelope import new_event

    await engine.handle_event(new_event("ips.aanvraag.ingediend.v1", service="bench", subject=case_id, data=data))
    answered: set[str] = set()
    while True:
        doc = await engine.instances.store.get(case_id)
        if doc["status"] != "running" or doc.get("user_tasks"):
            return dict(doc)
        open_ = [o for o in doc.get("outbox", []) if o["id"] not in answered]
        if not open_:
            raise RuntimeError(f"{case_id} waits for nothing the bench answers: {doc['active_elements']}")
        for entry in open_:
            answered.add(entry["id"])
            params = json.loads(entry["body"])["data"]
            reply = new_event(COMMAND_COMPLETED, service="bench", subject=case_id,
                              data=replies[entry["routing_key"]](params), event_id=f"r-{entry['id']}")
            await engine.handle_event(reply.model_copy(update={"causationid": entry["id"]}))


async def seed(db: Any, open_cases: int, closed_cases: int) -> None:
    from tests.bpmn.test_ips_traject import AANVRAAG, standard_replies, toetsing

    from process_engine.bootstrap import definition_files, load_catalogue
    from process_engine.engine import Engine
    from process_engine.repository import DefinitionRepository, InstanceRepository

    engine = Engine(DefinitionRepository(db), InstanceRepository(db),
                    load_catalogue(str(ROOT / "bpmn" / "README.md")))
    await engine.instances.ensure_indexes()
    await engine.deploy(definition_files(str(ROOT / "bpmn")), deployed_by="bench")
    refused = standard_replies(**{"ips.budget.reserveren.v1": lambda p: {
        "gereserveerd": False, "weigeringsgronden": [{"code": "IPS-PLAFOND", "tekst": "Het plafond is bereikt."}],
        "bedragCents": p["bedrag_cents"], "budgetperiode": "2026"}})
    # the decision date a year ahead: no overdue timer fires while the bench measures
    waiting = standard_replies(**{"ips.aanvraag.toetsen.v1": lambda p: toetsing(
        beslisdatum="2027-12-01", beslistermijnEinde="2027-12-01",
        beslistermijnVerstrijktOp="2027-12-01T23:00:00+00:00")})
    template = await drive(engine, "closed-template", {**AANVRAAG, "aanvraagId": "closed-template"}, refused)
    assert template["status"] == "completed", template["status"]
    # Where that checkout keeps a closed case: in instances (before issue 14's move), or moved (once the relay
    # cleared its outbox) to closed_instances with a summary in closed_summaries; copies go where it went.
    copies = {"instances": {**template, "outbox": [], "has_outbox": False}}
    if hasattr(engine, "finish_closing"):
        await db["instances"].update_one({"_id": "closed-template"}, {"$set": {"outbox": [], "has_outbox": False}})
        assert await engine.finish_closing() == 1
        copies = {name: await db[name].find_one({"_id": "closed-template"})
                  for name in ("closed_instances", "closed_summaries")}
    started = time.perf_counter()
    for name, copy in copies.items():
        batch: list[dict[str, Any]] = []
        for i in range(closed_cases):
            batch.append({**copy, "_id": f"closed-{i:06d}"})
            if len(batch) == 500 or i == closed_cases - 1:
                await db[name].insert_many(batch)
                batch = []
    print(f"    {closed_cases} closed cases copied in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    started = time.perf_counter()
    for i in range(open_cases):
        case_id = f"open-{i:04d}"
        doc = await drive(engine, case_id, {**AANVRAAG, "aanvraagId": case_id}, waiting)
        assert doc.get("user_tasks"), doc["active_elements"]
        await db["instances"].update_one({"_id": case_id}, {"$set": {"outbox": [], "has_outbox": False}})
    await db["instances"].update_one({"_id": "closed-template"}, {"$set": {"outbox": [], "has_outbox": False}})
    print(f"    {open_cases} open cases driven in {time.perf_counter() - started:.0f} s", file=sys.stderr)


async def command_sink(amqp_url: str, namespace: str) -> Any:
    """A queue that takes the engine's commands (a decision sends some), so the relay publishes and clears them
    as it would with the services running, instead of holding them as unroutable."""
    import aio_pika

    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(f"{namespace}ips.commands", aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange, routing_key="#")
    async def drop(_message: aio_pika.abc.AbstractIncomingMessage) -> None:
        pass

    await queue.consume(drop, no_ack=True)
    return connection


def start_engine(code: Path, infra: Any, namespace: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": f"{code / 'services'}{os.pathsep}{code}", "IPSFLOW_AMQP_URL": infra.amqp_url,
           "IPSFLOW_MONGO_URL": infra.mongo_url, "IPSFLOW_MONGO_POOL_SIZE": "8", "IPSFLOW_NAMESPACE": namespace,
           "IPSFLOW_HTTP_PORT": str(port), "IPSFLOW_ENVIRONMENT": "development",
           # the diagram the cases were seeded with (this checkout's), on either side
           "IPSFLOW_BPMN_DIR": str(ROOT / "bpmn"), "IPSFLOW_CATALOGUE_FILE": str(ROOT / "bpmn" / "README.md")}
    return subprocess.Popen([sys.executable, "-m", "process_engine"], env=env, cwd=code,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def cpu_of(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (/proc): what a call costs, whatever the machine's load."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


async def measure(url: str, calls: int, decide: int, pids: list[int]) -> dict[str, list[float]]:
    import httpx
    from tests.support.tokens import bearer

    official = bearer(f"behandelaar-{GEMEENTE}", "gemeente", GEMEENTE, "behandelaar", name="B. Behandelaar",
                      mandates=MANDATES)
    times: dict[str, list[float]] = {"werkvoorraad": [], "taak": [], "besluit": []}
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        listed: list[dict[str, Any]] = []
        warm = 1 if calls <= 5 else 3
        cpu = 0.0
        for i in range(calls + warm):
            if i == warm:
                cpu = cpu_of(pids)
            started = time.perf_counter()
            response = await client.get("/api/v1/taken", params={"pageSize": 500}, headers=official)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, response.text
            listed = response.json()
            if i >= warm:  # the first calls warm up (imports, caches, the pool)
                times["werkvoorraad"].append(elapsed)
        times["aantal"] = [float(len(listed))]
        times["cpu"] = [(cpu_of(pids) - cpu) / calls]
        for task in listed[:decide]:
            started = time.perf_counter()
            shown = await client.get(f"/api/v1/taken/{task['id']}", headers=official)
            times["taak"].append(time.perf_counter() - started)
            assert shown.status_code == 200, shown.text
            started = time.perf_counter()
            done = await client.post(f"/api/v1/taken/{task['id']}/afronden", headers=official,
                                     json={"gegevens": {"besluit": "toekennen", "motivering": "Akkoord."}})
            times["besluit"].append(time.perf_counter() - started)
            assert done.status_code == 200, done.text
    return times


async def index_read(url: str, deadline: float) -> bool:
    """Wait until the engine's case index has been read (GET /zaakindex: gereed), at most ``deadline`` seconds."""
    import httpx
    from tests.support.tokens import ADMIN

    until = time.monotonic() + deadline
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        while time.monotonic() < until:
            answer = await client.get("/api/v1/zaakindex", headers=ADMIN)
            if answer.status_code == 200 and answer.json().get("gereed"):
                return True
            await asyncio.sleep(2)
    return False


async def child(args: argparse.Namespace) -> None:
    import httpx
    from pymongo import AsyncMongoClient
    from tests.support.infra import discover
    from tests.support.namespaces import temporary_namespace
    from tests.support.processes import free_port

    code = Path(args.code)
    infra = discover()
    with temporary_namespace(infra, "bench") as namespace:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongo_url, maxPoolSize=8, tz_aware=True)
        db = client[f"{namespace}ipsflow_process_engine".replace(".", "_")]
        await seed(db, args.open, args.closed)
        await client.close()
        port = free_port()
        log = Path(f"/tmp/bench_worklist-{namespace.rstrip('.')}.log")
        proc = start_engine(code, infra, namespace, port, log)
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"the engine of {code} did not start; see {log}")
                await asyncio.sleep(0.5)
            # the engine's work at start (the case index's read, the read models' repair, the relay's scan, the
            # moves a crash left) is done before the calls are timed: the steady state a work list lives in
            started = time.monotonic()
            ready = await index_read(f"http://127.0.0.1:{port}", deadline=1800)
            startup = time.monotonic() - started
            sink = await command_sink(infra.amqp_url, namespace)
            pids = [proc.pid] + ([int(os.environ["BENCH_FERRETDB_PID"])] if "BENCH_FERRETDB_PID" in os.environ else [])
            times = await measure(f"http://127.0.0.1:{port}", args.calls, args.decide, pids)
            times["start"] = [startup if ready else float("nan")]
            await sink.close()
        finally:
            proc.terminate()
            proc.wait(30)
    print(json.dumps(times))


# --------------------------------------------------------------------------- parent: both side by side


def run_side(code: Path, args: argparse.Namespace, calls: int, decide: int) -> dict[str, list[float]]:
    print(f"  seeding and measuring {code} ...", file=sys.stderr)
    env = {**os.environ, "PYTHONPATH": f"{code / 'services'}{os.pathsep}{ROOT}"}
    done = subprocess.run([sys.executable, __file__, "--child", "--code", str(code), "--open", str(args.open),
                           "--closed", str(args.closed), "--calls", str(calls), "--decide", str(decide)],
                          env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@contextlib.contextmanager
def own_ferretdb() -> Iterator[str]:
    """A FerretDB of the bench's own (the local stack's build, data in a temporary directory): the seeding writes
    hundreds of megabytes, which should neither slow the shared one nor be slowed by it. RabbitMQ is shared."""
    from tests.support.processes import free_port

    base = Path(tempfile.mkdtemp(prefix="ipsflow-bench-worklist-"))
    port = free_port()
    binary = Path(os.environ.get("IPSFLOW_FERRETDB_BIN", ROOT / ".local" / "bin" / "ipsflow-ferretdb"))
    log = base / "ferretdb.log"
    ferret = subprocess.Popen([str(binary), "-listen", f"127.0.0.1:{port}", "-data-dir", str(base)],
                              stdout=log.open("ab"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "listening" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        os.environ["BENCH_FERRETDB_PID"] = str(ferret.pid)
        yield f"mongodb://127.0.0.1:{port}/"
    finally:
        ferret.terminate()
        try:
            ferret.wait(timeout=20)
        except subprocess.TimeoutExpired:
            ferret.kill()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", help="another checkout (e.g. a git worktree of 91e82d2)")
    parser.add_argument("--open", type=int, default=200)
    parser.add_argument("--closed", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--decide", type=int, default=30)
    parser.add_argument("--before-calls", type=int, default=5,
                        help="work list calls, lookups and decisions on --before (each scans every instance)")
    parser.add_argument("--only", choices=("before", "now"), help="measure one side only")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--code", default=str(ROOT))
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args))
        return
    sides = {"before": Path(args.before)} if args.before else {}
    sides["now"] = ROOT
    if args.only:
        sides = {args.only: sides[args.only]}
    with own_ferretdb() as mongo_url:
        from tests.support.infra import local_infra  # the shared broker, moved like deploy/local/stack.sh moves it

        os.environ.update({"IPSFLOW_TEST_MONGO_URL": mongo_url,
                           "IPSFLOW_TEST_AMQP_URL": os.environ.get("IPSFLOW_TEST_AMQP_URL", local_infra().amqp_url)})
        results = {name: run_side(code, args, *((args.before_calls,) * 2 if name == "before" else
                                                   (args.calls, args.decide)))
                   for name, code in sides.items()}
    print(f"gemeente {GEMEENTE}: {args.open} open tasks, {args.closed} closed cases overall; "
          f"{args.calls} work list calls, {args.decide} lookups and decisions ({args.before_calls} each before)")
    print(f"  {'':<8}{'tasks listed':>14}{'work list p50':>15}{'p95':>9}{'CPU/call':>10}{'lookup p50':>12}{'p95':>9}"
          f"{'decide p50':>12}{'p95':>9}{'index read':>12}  (ms; CPU: engine + FerretDB; index read: s from "
          f"ready until the case index was read, before the calls)")
    for name, t in results.items():
        print(f"  {name:<8}{int(t['aantal'][0]):>14}"
              f"{1000 * statistics.median(t['werkvoorraad']):>15.1f}{1000 * percentile(t['werkvoorraad'], .95):>9.1f}"
              f"{1000 * t.get('cpu', [float('nan')])[0]:>10.1f}"
              f"{1000 * statistics.median(t['taak']):>12.1f}{1000 * percentile(t['taak'], .95):>9.1f}"
              f"{1000 * statistics.median(t['besluit']):>12.1f}{1000 * percentile(t['besluit'], .95):>9.1f}"
              f"{t.get('start', [float('nan')])[0]:>12.1f}")


if __name__ == "__main__":
    main()
