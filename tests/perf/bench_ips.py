"""Benchmark: IPS cases from submission to beschikking, everything on this machine's cores.

Starts intake, grants, payments, notifications and the process engine as real processes in a namespace of their
own, on a RabbitMQ node and a FerretDB of the benchmark's own (``--stack own``, the default: the CPU, writes and
messages it counts are then only the benchmark's) or on the shared local stack (``--stack shared``). It submits
complete CMD applications over HTTP and plays the gemeente's officials. Prints figures; not a test.

How the load generator works (it must not be what is measured):
- It listens, with a queue of its own bound to the namespace's exchanges, to the engine's commands
  ``ips.budget.reserveren.v1`` and ``ips.aanvraag.besluit_registreren.v1`` and to the services' replies. A case
  whose reservation reply says ``gereserveerd`` goes to the officials; a case whose ``besluit_registreren``
  (status ``toegekend``) intake has answered is done: intake then shows it ``toegekend`` with its beschikking.
  Nothing polls every case.
- ``--officials`` officials (default 4) work in parallel, each with a token of its own. An official reads the
  case it was handed (``GET /zaken/{id}``, one document by id) until the task is there, and decides at once
  (``toekennen``).
- notifications mails to an SMTP sink in this process (aiosmtpd), so every letter is delivered; the run ends when
  every case is done and every letter has arrived.

Figures (between the first measured submission and the last letter; a few warm-up cases run before):
cases/s, p50/p95 latency submission -> beschikking, CPU ms per case of every process (``/proc/<pid>/stat`` of each
service, RabbitMQ's beam.smp, FerretDB and this load generator, its SMTP thread apart), database writes per case
(insert/update/delete/findAndModify commands, FerretDB's ``serverStatus``), broker messages per case (published
into the namespace's exchanges, management API).

Modes (one invocation can run several, each in a fresh namespace with fresh service processes):
- ``max``: ``--cases`` submitted by ``--concurrency`` submitters as fast as they go: the throughput.
- ``half``: the same number of cases submitted at a steady rate of half the ``max`` run's throughput (or
  ``--rate``): the latency at half the maximum load.
- ``history``: like ``max``, after ``--history`` completed and ``--open`` open cases were seeded; prints the
  throughput ratio to the ``max`` run (empty databases) when both ran.

Seeding history (``--seed clone``, the default) is a documented fast path: a few template cases are run through the
services (completed ones, and open ones whose task the officials leave alone), and every document in the
namespace's databases that names exactly one template case (its id; or, naming no case, ids that only one case's
documents hold, such as a letter that names the beschikking) is copied N times with every UUID in it (the case id,
beschikking, task, event and command ids; the 8-character prefix of a beschikking id in its kenmerk) mapped to a
fresh one per copy; ObjectId keys are new; outboxes are left empty, as the relay leaves them. Documents that name
several template cases (a budget ledger with its reservations, a gemeente's cap, a ggz's payment ledger) get the
copies' entries (map keys and list items that name a template case, or an id only that case's documents hold, such
as a payment order's) added; their totals (``beschikbaar_cents``, the cap's count) are left
as they were, so the measured cases still get money. Entries spread over parts by a hash (the engine's timers of a
day, ``timers/<day>/<part>``, and its work lists, ``worklists/<list>/<part>``; the grants ledger's buckets of
session 10) are grown as one map and spread again over the parts each copy's id hashes to, as the services would
have written them; a ggz's payment ledger gets the copies' bookings as moved-out documents (``grootboekposten``).
Not copied: documents that name no case (a consumer's record
of an applied message id kept on its own). ``--seed services`` runs every history case through the services
instead (the real thing; slow: hours for 20,000 on this machine).

After a copy the services are restarted, the measurement waits until FerretDB has been quiet for 5 s (at most
``--settle`` seconds; the time it took is printed) and runs ``--warmup`` cases again: the history run measures a
system that has been running with that history, not the minutes after 290,000 documents appeared under running
services (nor the first letters of a fresh process, which parse its fonts). Without the restart, the
relays' idle scans (each at least ``SCAN_SPACING`` times its last scan's time after it, and that last scan saw the
near-empty database) fell into the measured phase or not by chance: the engine's scan of 2,000 open cases took
68.9 s in one such run (README, Performance, session 11). The restart's own start-up scans (relays, read-model
repair, case index) run before the measurement instead, as they would after a deployment. ``--no-restart``
measures straight after the copy, as before session 12.

    PYTHONPATH=.:services .venv/bin/python tests/perf/bench_ips.py [--modes max,half,history] [--cases 100]
        [--concurrency 20] [--officials 4] [--history 20000 --open 2000] [--code DIR] [--json FILE]

``--code DIR`` runs the services of another checkout (e.g. ``git worktree add /tmp/old <commit>``): the harness
stays this one, so old and new code are measured the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aio_pika
import bson
import httpx
import pymongo
from aiosmtpd.controller import Controller
from bson import json_util
from bson.raw_bson import RawBSONDocument
from pymongo import AsyncMongoClient
from pymongo.errors import BulkWriteError
from tests.support.infra import ROOT, Infra, discover
from tests.support.ips import MANDATES, ROERMOND, application, ggz
from tests.support.namespaces import temporary_namespace
from tests.support.processes import free_port
from tests.support.tokens import bearer

SERVICES = ("grants", "intake", "process_engine", "payments", "notifications")
WRITE_COMMANDS = ("insert", "update", "delete", "findAndModify")
RESERVEREN, REGISTREREN = "ips.budget.reserveren.v1", "ips.aanvraag.besluit_registreren.v1"
VOLTOOID, MISLUKT = "ips.opdracht.voltooid.v1", "ips.opdracht.mislukt.v1"
TICKS = os.sysconf("SC_CLK_TCK")
RAW = bson.CodecOptions(document_class=RawBSONDocument)
# ids as the services make them: UUIDs, with or without dashes (uuid4().hex for event, trace and log ids)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
UUID_BYTES = re.compile(UUID.pattern.encode())


# --------------------------------------------------------------------------- what a process costs


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU of a process (all its threads) or of one of its threads, from /proc."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of proc(5))


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


def listener_pid(port: int) -> int | None:
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"pid=(\d+)", out)
    return int(found.group(1)) if found else None


# --------------------------------------------------------------------------- a stack of the benchmark's own


@dataclass
class Stack:
    infra: Infra
    pids: dict[str, int]  # "RabbitMQ", "FerretDB"
    own: bool


def _port_pair() -> int:
    """A free AMQP port whose Erlang distribution port (+20000, see stack.sh) is free too."""
    for _ in range(50):
        port = free_port()
        if port + 20000 < 65536:
            with contextlib.suppress(OSError), socket.socket() as s:
                s.bind(("127.0.0.1", port + 20000))
                return port
    raise RuntimeError("no free port pair for a RabbitMQ node")


def ferretdb_binary(code: Path) -> Path:
    """The FerretDB front of ``code`` (deploy/ferretdb): this checkout's build when the sources are the same."""
    ours = Path(os.environ.get("IPSFLOW_FERRETDB_BIN", ROOT / ".local" / "bin" / "ipsflow-ferretdb"))

    def sources(tree: Path) -> dict[str, bytes]:
        folder = tree / "deploy" / "ferretdb"
        return {f.name: f.read_bytes() for f in folder.iterdir() if f.is_file() and not f.name.endswith("_test.go")}

    def current(binary: Path, tree: Path) -> bool:  # as stack.sh decides: a build older than a source is stale
        folder = tree / "deploy" / "ferretdb"
        return binary.exists() and all(f.stat().st_mtime <= binary.stat().st_mtime
                                       for f in folder.iterdir() if f.is_file())

    if sources(code) == sources(ROOT) and current(ours, ROOT):
        return ours
    built = code / ".local" / "bin" / "ipsflow-ferretdb"
    if not current(built, code):
        print(f"building the FerretDB front of {code}", flush=True)
        built.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["go", "build", "-trimpath", "-o", str(built), "."], cwd=code / "deploy" / "ferretdb",
                       check=True)
    return built


@contextlib.contextmanager
def own_stack(code: Path) -> Iterator[Stack]:
    """A RabbitMQ node (deploy/local/stack.sh with moved ports and directories) and a FerretDB, both in a
    temporary directory, stopped and removed afterwards. The shared stack is not touched."""
    base = Path(tempfile.mkdtemp(prefix="ipsflow-bench-stack-"))
    amqp, management, mongo = _port_pair(), free_port(), free_port()
    env = {**os.environ, "IPSFLOW_LOCAL_DIR": str(base), "IPSFLOW_RABBITMQ_PORT": str(amqp),
           "IPSFLOW_RABBITMQ_MANAGEMENT_PORT": str(management),
           "IPSFLOW_RABBITMQ_NODENAME": f"bench{os.getpid()}@localhost",
           "IPSFLOW_FERRETDB_LISTEN": f"127.0.0.1:{mongo}", "IPSFLOW_FERRETDB_DATA": str(base / "ferretdb")}
    (base / "ferretdb").mkdir()
    (base / "log").mkdir()
    # stack.sh finds this FerretDB listening and reuses it; its status reads the sync mode from this log
    ferret = subprocess.Popen([str(ferretdb_binary(code)), "-listen", f"127.0.0.1:{mongo}", "-data-dir",
                               str(base / "ferretdb")], stdout=(base / "log" / "ferretdb.log").open("ab"),
                              stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while "listening" not in (base / "log" / "ferretdb.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    stack = [str(ROOT / "deploy" / "local" / "stack.sh")]
    try:
        subprocess.run(["bash", *stack, "up"], env=env, check=True, stdout=subprocess.DEVNULL)
        beam = int((base / "rabbitmq" / "rabbitmq.pid").read_text())
        infra = Infra(f"amqp://guest:guest@127.0.0.1:{amqp}/", f"mongodb://127.0.0.1:{mongo}/",
                      f"http://guest:guest@127.0.0.1:{management}", "local")
        yield Stack(infra, {"RabbitMQ": beam, "FerretDB": ferret.pid}, own=True)
    finally:
        subprocess.run(["bash", *stack, "down"], env=env, check=False, stdout=subprocess.DEVNULL)
        ferret.terminate()
        try:
            ferret.wait(timeout=20)
        except subprocess.TimeoutExpired:
            ferret.kill()
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def shared_stack() -> Iterator[Stack]:
    infra = discover()
    pids = {name: pid for name, pid in (("RabbitMQ", listener_pid(int(urllib.parse.urlparse(infra.amqp_url).port
                                                                        or 5672))),
                                        ("FerretDB", listener_pid(int(urllib.parse.urlparse(infra.mongo_url).port
                                                                        or 27017)))) if pid}
    try:
        yield Stack(infra, pids, own=False)
    finally:
        infra.close()


# --------------------------------------------------------------------------- the services


@dataclass
class Service:
    package: str
    code: Path
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_services(code: Path, infra: Infra, namespace: str, logs: Path, smtp_port: int,
                   writes_dir: Path | None = None) -> dict[str, Service]:
    extra = {"IPSFLOW_GRANTS_VERDEELVENSTER_SECONDS": "0.5",
             "IPSFLOW_SMTP_HOST": "127.0.0.1", "IPSFLOW_SMTP_PORT": str(smtp_port)}
    if writes_dir:  # schrijfteller/sitecustomize.py counts each process's writes per collection
        extra.update({"IPSFLOW_BENCH_WRITES_DIR": str(writes_dir), "PYTHONPATH": os.pathsep.join(
            (str(Path(__file__).with_name("schrijfteller")), str(code / "services"), str(code)))})
    return start_services_only(code, infra, namespace, logs, SERVICES, extra)


def writes_by_collection(writes_dir: Path | None, services: dict[str, Service], namespace: str) -> dict[str, int]:
    """The services' write commands (and, as ``...#statements``, their statements) per service, database and
    collection so far, as the processes' command listeners last wrote them."""
    if writes_dir is None:
        return {}
    totals: dict[str, int] = {}
    for name, service in services.items():
        with contextlib.suppress(FileNotFoundError, ValueError):
            counts = json.loads((writes_dir / f"{service.proc.pid}.json").read_text())
            for key, value in counts.items():
                key = f"{name}: {key.removeprefix(namespace)}"
                totals[key] = totals.get(key, 0) + int(value)
    return totals


def start_services_only(code: Path, infra: Infra, namespace: str, logs: Path, packages: tuple[str, ...],
                        extra: dict[str, str], ready_seconds: float = 120) -> dict[str, Service]:
    """``packages`` of checkout ``code`` as processes (``python -m``), ready when this returns (else they are
    stopped again and this raises)."""
    started: dict[str, Service] = {}
    for package in packages:
        port = free_port()
        env = {**os.environ,
               "PYTHONPATH": f"{code / 'services'}{os.pathsep}{code}", "PYTHONDONTWRITEBYTECODE": "1",
               "IPSFLOW_AMQP_URL": infra.amqp_url, "IPSFLOW_MONGO_URL": infra.mongo_url,
               "IPSFLOW_MONGO_POOL_SIZE": "8", "IPSFLOW_NAMESPACE": namespace, "IPSFLOW_HTTP_PORT": str(port),
               "IPSFLOW_ENVIRONMENT": "development", "IPSFLOW_LOG_LEVEL": "WARNING",
               # both checkouts trust the tokens this harness mints
               "IPSFLOW_DEV_KEY_DIR": os.environ.get("IPSFLOW_DEV_KEY_DIR", str(ROOT / ".local" / "dev-keys")),
               **extra}
        log = (logs / f"{package}.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", package], env=env, cwd=code, stdout=log,
                                stderr=subprocess.STDOUT)
        started[package] = Service(package, code, proc, port)
    deadline = time.monotonic() + ready_seconds
    try:
        for service in started.values():
            while True:
                if service.proc.poll() is not None:
                    raise RuntimeError(f"{service.package} exited with {service.proc.returncode}; see {logs}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{service.url}/ready", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{service.package} not ready; see {logs}")
                time.sleep(0.2)
    except BaseException:
        stop_services(started)
        raise
    return started


def stop_services(services: dict[str, Service]) -> None:
    for service in services.values():
        if service.proc.poll() is None:
            service.proc.terminate()
    for service in services.values():
        try:
            service.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            service.proc.kill()
            service.proc.wait()


#: The CPU figures of this process: the harness, not the system under test (printed apart from the system's sum).
HARNESS: Final = ("load generator", "SMTP sink (thread of it)")

# --------------------------------------------------------------------------- SMTP sink


class Sink:
    """aiosmtpd handler that counts the messages it accepts (and keeps nothing)."""

    def __init__(self) -> None:
        self.received = 0
        self.thread_id: int | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.thread_id is None:
            self.thread_id = threading.get_native_id()
        self.received += 1
        return "250 OK"


# --------------------------------------------------------------------------- the run


@dataclass
class Run:
    services: dict[str, Service]
    stack: Stack
    namespace: str
    sink: Sink
    officials: int
    submitted: dict[str, float] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)
    outcome: dict[str, str] = field(default_factory=dict)  # case -> status registered (toegekend, afgewezen, ...)
    hold: set[str] = field(default_factory=set)  # cases whose task the officials leave open
    commands: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # command id -> (type, case, status)
    early: dict[str, dict[str, Any]] = field(default_factory=dict)  # replies seen before their command
    ready: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    decided: int = 0
    decide_errors: list[str] = field(default_factory=list)
    retried: dict[int, int] = field(default_factory=dict)  # decisions answered 404/409 and tried again
    reads: int = 0
    writes_dir: Path | None = None  # --writes-by-collection: where the services' write counters are
    client: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=60))

    @property
    def engine(self) -> str:
        return self.services["process_engine"].url

    def on_message(self, body: dict[str, Any]) -> None:
        kind = body.get("type")
        if kind in (RESERVEREN, REGISTREREN):
            data = body.get("data") or {}
            self.commands[body["id"]] = (kind, str(body.get("subject")), str(data.get("status", "")))
            reply = self.early.pop(body["id"], None)
            if reply is not None:
                self.on_message(reply)
        elif kind in (VOLTOOID, MISLUKT):
            command = self.commands.get(str(body.get("causationid")))
            if command is None:
                if len(self.early) < 100_000:
                    self.early[str(body.get("causationid"))] = body
                return
            kind_, case, status = command
            data = body.get("data") or {}
            if kind_ == RESERVEREN and kind == VOLTOOID:
                reservering = data.get("reservering", data) if isinstance(data, dict) else {}
                if reservering.get("gereserveerd") and case not in self.hold:
                    self.ready.put_nowait(case)
            elif kind_ == REGISTREREN and kind == VOLTOOID and case not in self.finished:
                self.finished[case] = time.monotonic()
                self.outcome[case] = status

    async def listen(self, connection: aio_pika.abc.AbstractRobustConnection) -> None:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=500)
        queue = await channel.declare_queue(f"{self.namespace}bench.luisteraar", exclusive=True, auto_delete=True)
        for exchange, key in (("ips.commands", RESERVEREN), ("ips.commands", REGISTREREN),
                              ("ips.events", VOLTOOID), ("ips.events", MISLUKT)):
            await queue.bind(f"{self.namespace}{exchange}", routing_key=key)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            with contextlib.suppress(ValueError):
                self.on_message(json.loads(message.body))
            await message.ack()

        await queue.consume(on_message)

    async def official(self, k: int) -> None:
        token = bearer(f"behandelaar-{ROERMOND}-{k}", "gemeente", ROERMOND, "behandelaar",
                       name=f"Behandelaar {k}, werk en inkomen", mandates=MANDATES)
        while True:
            case = await self.ready.get()
            wait, deadline = 0.05, time.monotonic() + 120
            while time.monotonic() < deadline:
                response = await self.client.get(f"{self.engine}/api/v1/zaken/{case}", headers=token)
                self.reads += 1
                tasks = response.json().get("taken", []) if response.status_code == 200 else []
                if tasks:
                    decided = await self.client.post(
                        f"{self.engine}/api/v1/taken/{tasks[0]['id']}/afronden", headers=token,
                        json={"gegevens": {"besluit": "toekennen", "motivering": "Akkoord."}})
                    if decided.status_code == 200:
                        self.decided += 1
                        break
                    if decided.status_code not in (404, 409):
                        self.decide_errors.append(f"{decided.status_code} {decided.text[:200]}")
                        break
                    # 409: the case moved on under us; 404: the task lookup has not caught up with the case
                    # (seen once with a task read model): read it again, and count it
                    self.retried[decided.status_code] = self.retried.get(decided.status_code, 0) + 1
                await asyncio.sleep(wait)
                wait = min(1.0, wait * 2)

    async def submit(self, prefix: str, i: int, token: dict[str, str]) -> str:
        t = time.monotonic()
        response = await self.client.post(f"{self.services['intake'].url}/api/v1/aanvragen", headers=token,
                                          json=application(clientReferentie=f"{prefix}-{i:05d}"))
        if response.status_code != 201:
            raise RuntimeError(f"submission refused: {response.status_code} {response.text[:300]}")
        case = str(response.json()["id"])
        self.submitted[case] = t
        return case

    async def wait_done(self, cases: list[str], letters: int, timeout: float, label: str) -> bool:
        deadline, last = time.monotonic() + timeout, time.monotonic()
        while time.monotonic() < deadline:
            done = sum(c in self.finished for c in cases)
            if done == len(cases) and self.sink.received >= letters:
                return True
            if time.monotonic() - last > 15:
                print(f"  ... {label}: {done}/{len(cases)} beschikkingen, {self.sink.received}/{letters} letters",
                      flush=True)
                last = time.monotonic()
            await asyncio.sleep(0.05)
        return False

    def cpu(self) -> dict[str, float]:
        out = {name: cpu_seconds(s.proc.pid) for name, s in self.services.items()}
        out.update({name: cpu_seconds(pid) for name, pid in self.stack.pids.items()})
        me = cpu_seconds(os.getpid())
        sink = cpu_seconds(os.getpid(), self.sink.thread_id) if self.sink.thread_id else 0.0
        out[HARNESS[0]], out[HARNESS[1]] = me - sink, sink
        return out

    def counters(self) -> dict[str, Any]:
        infra = self.stack.infra
        if self.writes_dir:
            time.sleep(0.5)  # the counters are written every 0.2 s
        return {"cpu": self.cpu(), "writes": server_writes(infra.mongo_url),
                "by_collection": writes_by_collection(self.writes_dir, self.services, self.namespace),
                "messages": published(infra.management_url, infra.amqp_url, self.namespace),
                "letters": self.sink.received, "reads": self.reads, "t": time.monotonic()}


# --------------------------------------------------------------------------- history: the fast path


def _remap(text: str, mapping: dict[str, str], salt: str) -> str:
    def new(match: re.Match[str]) -> str:
        old = match.group(0)
        if old not in mapping:
            fresh = uuid.uuid5(uuid.NAMESPACE_URL, f"bench:{salt}:{old}")
            mapping[old] = str(fresh) if "-" in old else fresh.hex
        return mapping[old]

    text = UUID.sub(new, text)
    for old, fresh in list(mapping.items()):  # a beschikking's kenmerk carries its id's first 8 characters
        if "-" in old:
            text = text.replace(f"-{old[:8].upper()}", f"-{fresh[:8].upper()}")
    return text


def _copy_raw(raw: bytes, salt: str) -> bytes:
    """``_remap`` on a document's BSON: every id is replaced by one of the same length, so the BSON stays valid
    and nothing is decoded (the ids in a zlib-compressed state are left alone: Spiff's own, per workflow)."""
    mapping: dict[bytes, bytes] = {}

    def new(match: re.Match[bytes]) -> bytes:
        old = match.group(0)
        if old not in mapping:
            fresh = uuid.uuid5(uuid.NAMESPACE_URL, f"bench:{salt}:{old.decode()}")
            mapping[old] = (str(fresh) if b"-" in old else fresh.hex).encode()
        return mapping[old]

    out = UUID_BYTES.sub(new, raw)
    for old, fresh in mapping.items():
        if b"-" in old:
            out = out.replace(b"-" + old[:8].upper(), b"-" + fresh[:8].upper())
    return out


def _names(doc: dict[str, Any], cases: set[str]) -> set[str]:
    text = json_util.dumps(doc)
    return {c for c in cases if c in text}


def _copy(doc: dict[str, Any], salt: str, mapping: dict[str, str]) -> dict[str, Any]:
    clone: dict[str, Any] = json_util.loads(_remap(json_util.dumps(doc), mapping, salt))
    return clone


def _grow(value: Any, templates: set[str], copies: list[tuple[str, str]], owners: dict[str, str] | None = None) -> Any:
    """A shared document with, next to every entry (map key or list item) that names a template case, that
    entry for every copy of that case. ``copies``: (template case, salt) per copy. ``owners``: ids that belong to
    one template case (an order's id, a task's) and that case: a map key that holds one counts as naming it."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out[key] = _grow(item, templates, copies, owners)
            owner = next((t for t in templates if t in key), None)
            if owner is None and owners:
                owner = next((owners[i] for i in UUID.findall(key) if i in owners), None)
            if owner is not None:
                for template, salt in copies:
                    if template == owner:
                        mapping: dict[str, str] = {}
                        out[_remap(key, mapping, salt)] = _copy({"v": item}, salt, mapping)["v"]
        return out
    if isinstance(value, list):
        grown = [_grow(item, templates, copies, owners) for item in value]
        for item in value:
            owners = _names({"v": item}, templates)
            if len(owners) == 1:
                [owner] = owners
                grown.extend(_copy({"v": item}, salt, {})["v"] for template, salt in copies if template == owner)
        return grown
    return value


def _bucket_256(aanvraag_id: str) -> str:
    """The bucket of an aanvraag in the grants ledger layout of session 10 (ADR 0010; 256 buckets by blake2b), for
    a history copy under a checkout of that time."""
    return f"{int.from_bytes(hashlib.blake2b(aanvraag_id.encode(), digest_size=4).digest(), 'big') % 256:02x}"


async def _grow_buckets(collection: Any, docs: list[dict[str, Any]], templates: set[str],
                        copies: list[tuple[str, str]]) -> int:
    """A ledger's buckets in the layout of session 10 (``budgetposten/<ledger>/<bucket>``, checkouts 4a2287a and
    before) with the copies' entries, each in the bucket of its own id; a bucket keeps its version, so that it
    stays level with its ledger. Returns how many buckets it wrote. (Since session 11 an aanvraag's entries are
    a document of their own and are copied with its case.)"""
    written = 0
    for ledger in sorted({str(d["ledger"]) for d in docs}):
        mine = [d for d in docs if d["ledger"] == ledger]
        buckets: dict[str, dict[str, dict[str, Any]]] = {}
        for kind in ("reserveringen", "financieel"):
            grown = _grow({k: v for d in mine for k, v in (d.get(kind) or {}).items()}, templates, copies)
            for aid, entry in grown.items():
                buckets.setdefault(_bucket_256(aid), {"reserveringen": {}, "financieel": {}})[kind][aid] = entry
        versions = {str(d["_id"]): d.get("versie") for d in mine}
        for b, content in buckets.items():
            bid = f"{ledger}/{b}"
            doc = {"_id": bid, "ledger": ledger, **content}
            if versions.get(bid) is not None:
                doc["versie"] = versions[bid]
            await collection.replace_one({"_id": bid}, doc, upsert=True)
            written += 1
    return written


async def _grow_parts(collection: Any, docs: list[dict[str, Any]], templates: set[str], copies: list[tuple[str, str]],
                     field: str, part_of: Callable[[str, str, Any], str], owners: dict[str, str] | None = None) -> int:
    """Documents spread by key over parts (``<whole>/<part>``, the whole listing its parts in ``delen``: a day's
    timers, a work list) with the copies' entries, each in the part of its own key (``part_of(whole, key,
    value)``, the function the engine uses) and the whole listing every part. Returns the parts written."""
    written = 0
    for whole in sorted({str(d["_id"]).rpartition("/")[0] for d in docs}):
        mine = [d for d in docs if str(d["_id"]).rpartition("/")[0] == whole]
        stored = {k: v for d in mine for k, v in (d.get(field) or {}).items()}
        # entries packed in one binary each (the engine's work lists since session 12): grown as documents, so
        # that the ids in them are remapped, then packed again
        packed = any(isinstance(v, bytes) for v in stored.values())
        entries = _grow({k: bson.decode(v, codec_options=bson.CodecOptions(tz_aware=True)) if isinstance(v, bytes)
                         else v for k, v in stored.items()}, templates, copies, owners)
        if packed:
            entries = {k: bson.Binary(bson.encode(v)) for k, v in entries.items()}
        parts: dict[str, dict[str, Any]] = {}
        for key, value in entries.items():
            parts.setdefault(part_of(whole, key, value), {})[key] = value
        for part, content in parts.items():
            await collection.replace_one({"_id": part}, {"_id": part, field: content}, upsert=True)
            written += 1
        await collection.update_one({"_id": whole}, {"$addToSet": {"delen": {"$each": [
            p.rpartition("/")[2] for p in parts]}}}, upsert=True)
    return written


def _timer_part(day: str, key: str, due: Any) -> str:
    from process_engine.readmodels import timer_bucket, unfield_key

    return timer_bucket(due, unfield_key(key))


def _worklist_part(list_id: str, key: str, entry: Any) -> str:
    from process_engine.readmodels import unfield_key, worklist_part

    return worklist_part(list_id, unfield_key(key))


async def _grow_ledger_window(database: Any, doc: dict[str, Any], templates: set[str], copies: list[tuple[str, str]],
                              owners: dict[str, str]) -> int:
    """A payments ledger per ggz (payments/grootboek.py): the copies' bookings, as the window would have moved them
    out, each a document in ``grootboekposten``; the ledger itself keeps its window. Returns the documents written."""
    from payments.grootboek import post_id

    window = doc.get("boekingen") or {}
    grown = _grow(window, templates, copies, owners)
    kvk = str(doc["_id"])
    posts = [{"_id": post_id(kvk, key), "kvk": kvk, "sleutel": key, "boeking": booking}
             for key, booking in grown.items() if key not in window]
    for start in range(0, len(posts), 1000):
        try:
            await database["grootboekposten"].insert_many(posts[start:start + 1000], ordered=False)
        except BulkWriteError as exc:  # copied by the per-case pass (a template's booking moved out already)
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise
    return len(posts)


async def clone_history(mongo_url: str, namespace: str, completed: list[str], open_: list[str], n_completed: int,
                        n_open: int) -> dict[str, Any]:
    """Copy the template cases' documents (see the module's docstring) into N completed and M open cases."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, maxPoolSize=4, tz_aware=True)
    prefix = namespace.replace(".", "_")
    templates = set(completed) | set(open_)
    copies = [(completed[k % len(completed)], f"c{k}") for k in range(n_completed)]
    copies += [(open_[k % len(open_)], f"o{k}") for k in range(n_open)]
    written: dict[str, Any] = {"documents": 0, "shared": 0, "duplicates": 0, "shared_docs": [], "per_case": {},
                               "not_copied": {}}
    shown = time.monotonic()
    try:
        # pass 1: every document of the namespace, and the ids each template case's own documents hold
        found: list[tuple[str, str, RawBSONDocument]] = []
        for name in await client.list_database_names():
            if name.startswith(prefix):
                for coll in await client[name].list_collection_names():
                    raws = await client[name].get_collection(coll, codec_options=RAW).find({}).to_list(None)
                    found.extend((name, coll, raw) for raw in raws)
        owned: dict[str, set[bytes]] = {t: set() for t in templates}
        for _, _, raw in found:
            named = {c for c in templates if c.encode() in raw.raw}
            if len(named) == 1:
                owned[next(iter(named))].update(UUID_BYTES.findall(raw.raw))
        common = {i for t in owned for i in owned[t] if sum(i in ids for ids in owned.values()) > 1}
        owner_of = {i.decode(): t for t, ids in owned.items() for i in ids - common}
        # pass 2: a document that names one template case (or, naming none, holds ids of one case only, e.g. a
        # letter that names the beschikking) is that case's; one that names several is shared
        per_case: dict[tuple[str, str], dict[str, list[tuple[bytes, bool]]]] = {}
        buckets: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for name, coll, raw in found:
            named = {c for c in templates if c.encode() in raw.raw}
            if not named:
                ids = set(UUID_BYTES.findall(raw.raw)) - common
                named = {t for t, mine in owned.items() if ids & mine}
            where = f"{name[len(prefix):]}.{coll}"
            doc = bson.decode(raw.raw, codec_options=bson.CodecOptions(tz_aware=True))
            if (coll == "budgetposten" and "aanvraag" not in doc) or (coll in ("timers", "worklists")
                                                                      and "/" in str(doc["_id"])):
                buckets.setdefault((name, coll), []).append(doc)
                continue
            if len(named) == 1:
                fix = isinstance(doc.get("_id"), bson.ObjectId) or bool(doc.get("outbox"))
                per_case.setdefault((name, coll), {}).setdefault(next(iter(named)), []).append((raw.raw, fix))
            elif len(named) > 1 and coll == "grootboek" and doc.get("indeling") == "venster":
                written["shared"] += await _grow_ledger_window(client[name], doc, templates, copies, owner_of)
                written["shared_docs"].append(f"{where}/{doc['_id']}")
            elif len(named) > 1:
                await client[name][coll].replace_one({"_id": doc["_id"]}, _grow(doc, templates, copies, owner_of))
                written["shared"] += 1
                written["shared_docs"].append(f"{where}/{doc['_id']}")
            else:
                written["not_copied"][where] = written["not_copied"].get(where, 0) + 1
        for (name, coll), docs in buckets.items():
            if coll == "budgetposten":
                written["shared"] += await _grow_buckets(client[name][coll], docs, templates, copies)
            elif coll == "timers":
                written["shared"] += await _grow_parts(client[name][coll], docs, templates, copies, "c", _timer_part)
            else:
                written["shared"] += await _grow_parts(client[name][coll], docs, templates, copies, "e",
                                                       _worklist_part, owner_of)
        for (name, coll), cases in per_case.items():
            written["per_case"][f"{name[len(prefix):]}.{coll}"] = round(
                sum(len(d) for d in cases.values()) / len(templates), 2)
            batch: list[Any] = []
            for i, (template, salt) in enumerate(copies):
                for raw_bytes, fix in cases.get(template, []):
                    copied = _copy_raw(raw_bytes, salt)
                    if fix:  # a new ObjectId; the outbox empty, as the relay leaves it
                        fixed = bson.decode(copied, codec_options=bson.CodecOptions(tz_aware=True))
                        if isinstance(fixed.get("_id"), bson.ObjectId):
                            fixed["_id"] = bson.ObjectId()
                        if fixed.get("outbox"):
                            fixed["outbox"] = []
                        batch.append(fixed)
                    else:
                        batch.append(RawBSONDocument(copied))
                if len(batch) >= 200 or (batch and i == len(copies) - 1):
                    if time.monotonic() - shown > 15:
                        print(f"    ... {written['documents']} documents copied ({name[len(prefix):]}.{coll})",
                              flush=True)
                        shown = time.monotonic()
                    try:
                        await client[name][coll].insert_many(batch, ordered=False)
                        written["documents"] += len(batch)
                    except BulkWriteError as exc:  # an id that is no UUID: the copy would be the same doc
                        errors = exc.details.get("writeErrors", [])
                        written["documents"] += len(batch) - len(errors)
                        written["duplicates"] += len(errors)
                        written.setdefault("duplicate_in", set()).add(f"{name}.{coll}")
                    batch = []
    finally:
        await client.close()
    written["duplicate_in"] = sorted(written.get("duplicate_in", ()))
    return written


# --------------------------------------------------------------------------- one measured run


@dataclass
class Options:
    cases: int
    concurrency: int
    officials: int
    warmup: int
    timeout: float
    history: int = 0
    open: int = 0
    seed: str = "clone"
    templates: int = 4
    writes_by_collection: bool = False
    restart: bool = True
    settle: float = 300.0


async def measured_run(stack: Stack, code: Path, mode: str, opts: Options, rate: float | None) -> dict[str, Any]:
    with temporary_namespace(stack.infra, "bench") as namespace:
        logs = Path(tempfile.mkdtemp(prefix=f"ipsflow-bench-{mode}-"))
        sink = Sink()
        smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
        smtp.start()
        writes_dir = Path(tempfile.mkdtemp(prefix="ipsflow-bench-writes-")) if opts.writes_by_collection else None
        services = start_services(code, stack.infra, namespace, logs, smtp.port, writes_dir)
        run = Run(services, stack, namespace, sink, opts.officials, writes_dir=writes_dir)
        connection = await aio_pika.connect_robust(stack.infra.amqp_url)
        workers = [asyncio.create_task(run.official(k)) for k in range(opts.officials)]
        try:
            await run.listen(connection)
            token = ggz()
            seeded: dict[str, Any] = {}
            warm = [await run.submit("WARM", i, token) for i in range(max(opts.warmup, 1))]
            if not await run.wait_done(warm, len(warm), 300, "warm-up"):
                raise RuntimeError(f"warm-up cases not done; logs in {logs}")
            if mode == "history":
                seeded = await seed(run, opts, token, warm)
                letters_before = run.counters()["letters"]
                if opts.restart and opts.seed == "clone":
                    stop_services(run.services)
                    run.services = services = start_services(code, stack.infra, namespace, logs, smtp.port,
                                                             writes_dir)
                    seeded["settled_s"] = await settle(stack, opts.settle)
                    # as before the empty run: a few cases first, so that no cache of a fresh process (the
                    # letter's fonts, the parsed definition) is filled inside the measurement
                    rewarm = [await run.submit("REWARM", i, token) for i in range(max(opts.warmup, 1))]
                    if not await run.wait_done(rewarm, letters_before + len(rewarm), 300, "warm-up after restart"):
                        raise RuntimeError(f"warm-up cases after the restart not done; logs in {logs}")
                    print(f"  services restarted; FerretDB quiet after {seeded['settled_s']:.0f} s, then "
                          f"{len(rewarm)} warm-up cases", flush=True)
            before = run.counters()
            letters = before["letters"]
            cases: list[str] = []
            started = time.monotonic()
            if rate:  # a steady arrival rate, independent of how fast the system answers
                async def one(i: int) -> None:
                    cases.append(await run.submit("BENCH", i, token))
                pending = []
                for i in range(opts.cases):
                    pending.append(asyncio.create_task(one(i)))
                    await asyncio.sleep(max(0.0, started + (i + 1) / rate - time.monotonic()))
                await asyncio.gather(*pending)
            else:
                gate = asyncio.Semaphore(opts.concurrency)

                async def gated(i: int) -> None:
                    async with gate:
                        cases.append(await run.submit("BENCH", i, token))
                await asyncio.gather(*(gated(i) for i in range(opts.cases)))
            submitted_in = time.monotonic() - started
            complete = await run.wait_done(cases, letters + opts.cases, opts.timeout, mode)
            after = run.counters()
            done = [c for c in cases if c in run.finished]
            latencies = sorted(run.finished[c] - run.submitted[c] for c in done)
            # incomplete: the cases done within the timeout, over the whole time waited
            elapsed = (max(run.finished[c] for c in done) if done and complete else after["t"]) - started
            n = len(done) or 1
            result = {
                "mode": mode, "cases": opts.cases, "done": len(done), "complete": complete,
                "rate": rate, "concurrency": opts.concurrency, "officials": opts.officials,
                "submitted_s": submitted_in, "elapsed_s": elapsed, "cases_per_s": len(done) / elapsed,
                "p50_s": statistics.median(latencies) if latencies else None,
                "p95_s": latencies[int(0.95 * (len(latencies) - 1))] if latencies else None,
                "cpu_ms_per_case": {k: 1000 * (after["cpu"][k] - before["cpu"][k]) / n for k in after["cpu"]},
                "writes_per_case": (after["writes"] - before["writes"]) / n,
                "writes_by_collection": {k: (v - before["by_collection"].get(k, 0)) / n
                                         for k, v in after["by_collection"].items()
                                         if v != before["by_collection"].get(k, 0)},
                "messages_per_case": (after["messages"] - before["messages"]) / n,
                "letters": after["letters"] - letters, "case_reads_per_case": (after["reads"] - before["reads"]) / n,
                "outcomes": {s: sum(run.outcome.get(c) == s for c in done) for s in set(run.outcome.values())},
                "decide_errors": run.decide_errors[:5], "decide_retried": run.retried, "history": seeded,
                "stack": "own" if stack.own else "shared",
            }
            result["cpu_ms_per_case"]["all"] = sum(result["cpu_ms_per_case"].values())
            return result
        finally:
            for w in workers:
                w.cancel()
            await connection.close()
            await run.client.aclose()
            stop_services(services)
            smtp.stop()


async def settle(stack: Stack, most: float, quiet: float = 5.0, busy_share: float = 0.15) -> float:
    """Wait until FerretDB used less than ``busy_share`` of a core in each of ``quiet`` seconds in a row (the
    services' start-up scans done), at most ``most`` seconds; returns the seconds waited."""
    pid = stack.pids.get("FerretDB")
    started = time.monotonic()
    if pid is None:
        return 0.0
    calm, last = 0, cpu_seconds(pid)
    while calm < quiet and time.monotonic() - started < most:
        await asyncio.sleep(1.0)
        now = cpu_seconds(pid)
        calm = calm + 1 if now - last < busy_share else 0
        last = now
    return time.monotonic() - started


async def seed(run: Run, opts: Options, token: dict[str, str], warm: list[str]) -> dict[str, Any]:
    """``--history`` completed and ``--open`` open cases in the databases before the measured run."""
    t0 = time.monotonic()
    if opts.seed == "services":
        gate = asyncio.Semaphore(opts.concurrency)

        async def one(prefix: str, i: int, hold: bool) -> str:
            async with gate:
                case = await run.submit(prefix, i, token)
                if hold:
                    run.hold.add(case)
                return case
        done = await asyncio.gather(*(one("HIST", i, False) for i in range(opts.history)))
        held = await asyncio.gather(*(one("OPEN", i, True) for i in range(opts.open)))
        await run.wait_done(list(done), 0, 24 * 3600, "history")
        await wait_tasks(run, list(held))
        return {"completed": opts.history, "open": opts.open, "how": "services", "seconds": time.monotonic() - t0}
    completed = warm + [await run.submit("TMPL", i, token) for i in range(max(0, opts.templates - len(warm)))]
    held = []
    for i in range(opts.templates if opts.open else 0):
        case = await run.submit("TMPO", i, token)
        run.hold.add(case)
        held.append(case)
    if not await run.wait_done(completed, 0, 300, "templates"):
        raise RuntimeError("template cases not done")
    await wait_tasks(run, held)
    await asyncio.sleep(3)  # the relays clear the last outboxes; letters go out
    written = await clone_history(run.stack.infra.mongo_url, run.namespace, completed, held, opts.history, opts.open)
    print(f"  history: {opts.history} completed + {opts.open} open cases copied from {len(completed)} + {len(held)} "
          f"templates ({written['documents']} documents, {written['shared']} shared ones grown, "
          f"{written['duplicates']} not copied: same id, in {written['duplicate_in']}) in "
          f"{time.monotonic() - t0:.0f} s", flush=True)
    print(f"  documents per template case: {written['per_case']}; shared documents grown: {written['shared_docs']}; "
          f"documents of no case (not copied): {written['not_copied']}", flush=True)
    return {"completed": opts.history, "open": opts.open, "how": "clone", "seconds": time.monotonic() - t0,
            **written}


async def wait_tasks(run: Run, cases: list[str]) -> None:
    """Until every held case has its assessment task (then it waits for an official, as an open case does)."""
    admin = bearer("beheerder", "beheer", "ipsflow", "procesbeheerder", "functioneel-beheerder")
    deadline = time.monotonic() + 300
    for case in cases:
        while time.monotonic() < deadline:
            response = await run.client.get(f"{run.engine}/api/v1/zaken/{case}", headers=admin)
            if response.status_code == 200 and response.json().get("taken"):
                break
            await asyncio.sleep(0.5)


# --------------------------------------------------------------------------- report


def report(r: dict[str, Any]) -> None:
    what = f"steady {r['rate']:.2f} submissions/s" if r["rate"] else f"{r['concurrency']} concurrent submitters"
    print(f"[{r['mode']}] {r['done']}/{r['cases']} CMD cases, {what}, {r['officials']} officials, "
          f"{'a stack of its own' if r['stack'] == 'own' else 'the shared stack'}"
          + ("" if r["complete"] else "  (NOT COMPLETE within the timeout)"))
    if r["history"]:
        h = r["history"]
        print(f"  history: {h['completed']} completed + {h['open']} open cases ({h['how']}, {h['seconds']:.0f} s)")
    print(f"  throughput:         {r['cases_per_s']:.2f} cases/s ({r['elapsed_s']:.1f} s; submitted in "
          f"{r['submitted_s']:.1f} s)")
    if r["p50_s"] is not None:
        print(f"  latency p50 / p95:  {r['p50_s']:.2f} s / {r['p95_s']:.2f} s (submission -> beschikking)")
    cpu = r["cpu_ms_per_case"]
    harness = sum(v for k, v in cpu.items() if k in HARNESS)
    print(f"  CPU per case:       {cpu['all']:.0f} ms, of which the system {cpu['all'] - harness:.0f} (without "
          "this harness's load generator and SMTP sink): " + ", ".join(
        f"{k} {v:.0f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if k != "all"))
    print(f"  db writes per case: {r['writes_per_case']:.1f}   messages per case: {r['messages_per_case']:.1f}   "
          f"letters delivered: {r['letters']}   case reads by the officials per case: {r['case_reads_per_case']:.1f}")
    if r.get("writes_by_collection"):
        by = r["writes_by_collection"]
        commands = {k: v for k, v in by.items() if "#" not in k}
        print(f"  write commands per case by service: database.collection.command ({sum(commands.values()):.1f} "
              "counted by the services; statements in them after the /, and what the updates did):")
        for key, value in sorted(commands.items(), key=lambda kv: -kv[1]):
            kinds = ", ".join(f"{k.split('#', 1)[1]} {v:.2f}" for k, v in sorted(by.items())
                              if k.startswith(key + "#") and not k.endswith("#statements"))
            print(f"    {value:5.2f} / {by.get(key + '#statements', 0):5.2f}  {key}" + (f" ({kinds})" if kinds else ""))
    print(f"  outcomes: {r['outcomes']}" + (f"   decide errors: {r['decide_errors']}" if r["decide_errors"] else "")
          + (f"   decisions tried again (status: times): {r['decide_retried']}" if r.get("decide_retried") else ""),
          flush=True)


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    code = Path(args.code).resolve()
    opts = Options(args.cases, args.concurrency, args.officials, args.warmup, args.timeout, args.history, args.open,
                   args.seed, args.templates, args.writes_by_collection, not args.no_restart, args.settle)
    results: list[dict[str, Any]] = []
    modes = args.modes.split(",")
    with (own_stack(code) if args.stack == "own" else shared_stack()) as stack:
        print(f"bench_ips: services from {code}, stack {args.stack} ({stack.infra.amqp_url}, "
              f"{stack.infra.mongo_url})", flush=True)
        maximum: float | None = None
        for mode in modes:
            rate = None
            if mode == "half":
                rate = args.rate or (maximum / 2 if maximum else None)
                if rate is None:
                    raise SystemExit("--modes half needs a max run first or --rate")
            cases = {"half": args.half_cases, "history": args.history_cases}.get(mode) or args.cases
            result = await measured_run(stack, code, mode, dataclasses.replace(opts, cases=cases), rate)
            result["code"] = str(code)
            if mode == "max":
                maximum = result["cases_per_s"]
            if mode == "history" and maximum:
                result["ratio_to_empty"] = result["cases_per_s"] / maximum
            report(result)
            if "ratio_to_empty" in result:
                print(f"  throughput with history / empty: {result['ratio_to_empty']:.2f}", flush=True)
            results.append(result)
    return results


def _interrupted(signum: int, frame: Any) -> None:
    """SIGTERM as Ctrl-C: a terminated benchmark still stops its services, RabbitMQ node and FerretDB."""
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default="max", help="comma-separated: max, half, history (in that order)")
    parser.add_argument("--half-load", action="store_true", help="same as --modes max,half")
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--half-cases", type=int, help="cases of the half-load run (default: --cases)")
    parser.add_argument("--history-cases", type=int, help="cases of the history run (default: --cases)")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--officials", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=3, help="cases run before the measurement starts")
    parser.add_argument("--rate", type=float, help="submissions/s for --modes half (default: half the max run's)")
    parser.add_argument("--history", type=int, default=0, help="completed cases seeded before a history run")
    parser.add_argument("--open", type=int, default=0, help="open cases (task waiting) seeded before it")
    parser.add_argument("--seed", choices=("clone", "services"), default="clone")
    parser.add_argument("--templates", type=int, default=4, help="template cases per kind for --seed clone")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a measured run may take")
    parser.add_argument("--no-restart", action="store_true",
                        help="measure the history run straight after the copy (no restart, no settling)")
    parser.add_argument("--settle", type=float, default=300,
                        help="seconds at most to wait for FerretDB to be quiet after the restart")
    parser.add_argument("--stack", choices=("own", "shared"), default="own")
    parser.add_argument("--code", default=str(ROOT), help="checkout whose services run (default: this one)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--writes-by-collection", action="store_true",
                        help="count each service's writes per collection (tests/perf/schrijfteller) and print them")
    args = parser.parse_args()
    if args.half_load:
        args.modes = "max,half"
    if args.history and "history" not in args.modes:
        args.modes += ",history"
    signal.signal(signal.SIGTERM, _interrupted)
    results = asyncio.run(main_async(args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
