"""Chaos campaigns: IPS cases of the real ``ips_traject`` process through two replicas of every service and of the
engine, on a RabbitMQ node and a FerretDB of the campaign's own (never the shared stack: the campaign kills them),
while a chaos loop SIGKILLs and restarts replicas, and (optionally) the broker or FerretDB is killed with SIGKILL
during the burst and started again.

The driving pieces are tests/perf/bench_ips.py's (services as processes, the SMTP sink, the listener that hands a
case to the officials once its reservation is answered). Added here: replicas, HTTP that tries the other replica
when one is gone (a submission carries an Idempotency-Key, so trying again cannot make a second case), a sweeper
that reads the databases for cases the listener missed (its queue is not durable and dies with a killed broker),
and the invariants checked at the end (``check``), which the report prints.

    PYTHONPATH=.:services .venv/bin/python -m tests.support.chaos --cases 1000 [--broker-kill] [--ferret-kill]
        [--cluster]   (the 3-node cluster of deploy/local/cluster.sh)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import contextlib
import itertools
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pymongo
from aiosmtpd.controller import Controller

from grants.repository import met_posten
from tests.perf.bench_ips import (
    SERVICES,
    Run,
    Service,
    Sink,
    _port_pair,
    ferretdb_binary,
    published,
    start_services_only,
    stop_services,
)
from tests.support.infra import ROOT, Infra
from tests.support.ips import MANDATES, ROERMOND, application, ggz
from tests.support.namespaces import temporary_namespace
from tests.support.processes import free_port
from tests.support.tcp_proxy import CuttingProxy
from tests.support.tokens import bearer

STACK_SH = str(ROOT / "deploy" / "local" / "stack.sh")
CLUSTER_SH = str(ROOT / "deploy" / "local" / "cluster.sh")
# The checkout whose services run (default: this one). A campaign of an hour restarts replicas all the time, and each
# restart imports the code anew: in a checkout being edited, point this at a snapshot (git archive HEAD) instead.
CODE = Path(os.environ.get("IPSFLOW_CHAOS_CODE") or ROOT)
EXTRA = {"IPSFLOW_GRANTS_VERDEELVENSTER_SECONDS": "0.5", "IPSFLOW_SMTP_HOST": "127.0.0.1"}


# the listener's reconnect attempts while the broker is down are expected, not news
for _name in ("aio_pika", "aiormq"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


def log(t0: float, text: str) -> None:
    print(f"  [{time.monotonic() - t0:6.1f} s] {text}", flush=True)


# --------------------------------------------------------------------------- a stack that may be killed


@dataclass
class ChaosStack:
    """A RabbitMQ node (stack.sh with its own name, ports and directory) and a FerretDB of this campaign, or the
    three nodes of deploy/local/cluster.sh (``cluster``), which this campaign also starts and removes."""

    base: Path
    env: dict[str, str]
    mongo_port: int
    ferret: subprocess.Popen[bytes] | None = None
    cluster: bool = False
    amqp_urls: list[str] = field(default_factory=list)
    management_url: str = ""
    proxied: tuple[str, str] | None = None  # (AMQP, MongoDB URL) of the cutting proxies the services go through

    @property
    def infra(self) -> Infra:
        """For the harness (namespaces, the listener, the management API): the first node."""
        return Infra(self.amqp_urls[0], f"mongodb://127.0.0.1:{self.mongo_port}/", self.management_url, "local")

    @property
    def service_infra(self) -> Infra:
        """For the services: every node (IPSFLOW_AMQP_URL with commas, servicekit.broker.amqp_urls), or the
        proxies in front of the broker and the database."""
        if self.proxied is not None:
            return Infra(*self.proxied, self.management_url, "local")
        return Infra(",".join(self.amqp_urls), f"mongodb://127.0.0.1:{self.mongo_port}/", self.management_url,
                     "local")

    def start_ferret(self) -> None:
        logfile = self.base / "log" / "ferretdb.log"
        self.ferret = subprocess.Popen([str(ferretdb_binary(ROOT)), "-listen", f"127.0.0.1:{self.mongo_port}",
                                        "-data-dir", str(self.base / "ferretdb")], stdout=logfile.open("ab"),
                                       stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.mongo_port), timeout=1):
                return
            if time.monotonic() > deadline or self.ferret.poll() is not None:
                raise RuntimeError(f"FerretDB did not start; see {logfile}")
            time.sleep(0.2)

    def kill_ferret(self) -> int:
        assert self.ferret is not None
        pid = self.ferret.pid
        self.ferret.send_signal(signal.SIGKILL)
        self.ferret.wait()
        return pid

    def broker_pid(self, node: int = 0) -> int:
        folder = self.base / (f"rabbit{node + 1}" if self.cluster else "rabbitmq")
        return int((folder / "rabbitmq.pid").read_text())

    def start_broker(self) -> None:
        if self.cluster:
            subprocess.run(["bash", CLUSTER_SH, "up"], env=self.env, check=True, stdout=subprocess.DEVNULL)
        else:
            subprocess.run(["bash", STACK_SH, "rabbit-up"], env=self.env, check=True, stdout=subprocess.DEVNULL)

    def busiest_leader(self) -> int:
        """The cluster node that leads most of the campaign's quorum queues (the one whose loss hurts most)."""
        nodes = json.loads((self.base / "cluster.json").read_text())["nodes"]
        with httpx.Client(base_url=self.management_url, timeout=30) as mgmt:
            leaders = [q.get("leader") or q.get("node") for q in mgmt.get("/api/queues").json()]
        return max(range(len(nodes)), key=lambda i: leaders.count(nodes[i]))

    def kill_broker(self, node: int = 0) -> int:
        pid = self.broker_pid(node)
        os.kill(pid, signal.SIGKILL)
        while Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid):
            time.sleep(0.1)
        return pid

    def close(self) -> None:
        script = CLUSTER_SH if self.cluster else STACK_SH
        subprocess.run(["bash", script, "down"], env=self.env, check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        if self.ferret is not None and self.ferret.poll() is None:
            self.ferret.kill()
            self.ferret.wait()


def kill_kind(what: str) -> str:
    """A kill as the report counts it: 'SIGKILL intake', 'kill -9 RabbitMQ', 'cut FerretDB mid-request', ..."""
    words = what.split(" (")[0].split()
    if words[0] == "SIGKILL":
        return f"SIGKILL {words[1]}"
    if words[0] == "cut":
        proxy = next(w for w in words[2:] if w in ("FerretDB", "RabbitMQ"))
        return f"cut {proxy} {'mid-request' if 'mid-request' in words else 'open'}"
    return " ".join(words)


def _state(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split("\n", 1)[0]
    return "zombie"


@contextlib.contextmanager
def chaos_stack(cluster: bool = False) -> Iterator[ChaosStack]:
    """Started here, stopped and removed afterwards, also when the campaign fails."""
    base = Path(tempfile.mkdtemp(prefix="ipsflow-chaos-"))
    (base / "ferretdb").mkdir()
    (base / "log").mkdir()
    amqp, management = _port_pair(), free_port()
    tag = f"chaos{os.getpid()}"
    env = {**os.environ, "IPSFLOW_LOCAL_DIR": str(base), "IPSFLOW_RABBITMQ_PORT": str(amqp),
           "IPSFLOW_RABBITMQ_MANAGEMENT_PORT": str(management), "IPSFLOW_RABBITMQ_NODENAME": f"{tag}@localhost",
           "IPSFLOW_CLUSTER_DIR": str(base), "IPSFLOW_CLUSTER_NAME": tag,
           "IPSFLOW_CLUSTER_PORTS": " ".join(str(_port_pair()) for _ in range(3)),
           "IPSFLOW_CLUSTER_MANAGEMENT_PORTS": " ".join(str(free_port()) for _ in range(3))}
    stack = ChaosStack(base, env, free_port(), cluster=cluster)
    try:
        stack.start_ferret()
        stack.start_broker()
        if cluster:
            ports = json.loads((base / "cluster.json").read_text())
            stack.amqp_urls = [f"amqp://guest:guest@127.0.0.1:{p}/" for p in ports["amqp"]]
            stack.management_url = f"http://guest:guest@127.0.0.1:{ports['management'][0]}"
        else:
            stack.amqp_urls = [f"amqp://guest:guest@127.0.0.1:{amqp}/"]
            stack.management_url = f"http://guest:guest@127.0.0.1:{management}"
        yield stack
    finally:
        stack.close()
        shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------- replicas and the run


class Replicas:
    """Two (``n``) processes of every service; a killed one is started again (on a port of its own)."""

    def __init__(self, stack: ChaosStack, namespace: str, logs: Path, smtp_port: int, n: int) -> None:
        self.stack, self.namespace, self.logs, self.n = stack, namespace, logs, n
        self.extra = {**EXTRA, "IPSFLOW_SMTP_PORT": str(smtp_port)}
        self.procs: dict[tuple[str, int], Service] = {}
        self.started = 0

    def start(self, package: str, k: int) -> None:
        """Start a replica again; while the broker or FerretDB is down it cannot get ready (it exits or times
        out, and is stopped): then try again, as an orchestrator would."""
        folder = self.logs / f"{package}-{k}"
        folder.mkdir(exist_ok=True)
        deadline = time.monotonic() + 900
        while True:
            try:
                started = start_services_only(CODE, self.stack.service_infra, self.namespace, folder, (package,),
                                              self.extra)
                break
            except (RuntimeError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)
        self.procs[(package, k)] = started[package]
        self.started += 1

    def start_all(self) -> None:
        """Every replica's processes at once (each call starts its packages, then waits until they are ready)."""
        def replica(k: int) -> None:
            folder = self.logs / f"replica-{k}"
            folder.mkdir()
            started = start_services_only(CODE, self.stack.service_infra, self.namespace, folder, SERVICES,
                                          self.extra)
            self.procs.update({(package, k): service for package, service in started.items()})
            self.started += len(started)
        with concurrent.futures.ThreadPoolExecutor(self.n) as pool:
            list(pool.map(replica, range(self.n)))

    def urls(self, package: str) -> list[str]:
        live = [s.url for (p, _), s in self.procs.items() if p == package and s.proc.poll() is None]
        random.shuffle(live)
        return live

    def kill(self, package: str, k: int) -> int:
        service = self.procs[(package, k)]
        service.proc.send_signal(signal.SIGKILL)
        service.proc.wait()
        return service.proc.pid

    def stop(self) -> None:
        stop_services({f"{p}-{k}": s for (p, k), s in self.procs.items()})


@dataclass
class Campaign:
    cases: int = 60
    replicas: int = 2
    concurrency: int = 10
    officials: int = 4
    chaos_every: float = 4.0  # seconds between replica kills (0: no chaos loop)
    broker_kill: bool = False
    ferret_kill: bool = False
    cluster: bool = False
    down_seconds: float = 3.0
    timeout: float = 600.0
    cut_every: float = 0.0  # seconds between connection cuts (0: the services reach the servers without proxies)
    min_cuts: int = 0  # the chaos goes on until at least this many cuts were made
    # at most this many cases submitted and not yet toegekend (0: every case submitted at once, ``concurrency`` at a
    # time). The allocator decides in volgnummer order, so after a burst of 1,000 it waits for the slowest of the
    # lowest numbers while the engine works on all of them at once; a steady stream lets cases finish while others
    # are submitted.
    in_flight: int = 0
    # no case is submitted after this many seconds (0: all ``cases``); the invariants hold for those submitted. For a
    # machine too busy to finish ``cases`` in the time there is: the campaign still ends with every check.
    submit_for: float = 0.0


@dataclass
class Outcome:
    campaign: Campaign
    kills: list[tuple[float, str]]
    elapsed: float
    messages: int
    letters: int
    violations: list[str]
    figures: dict[str, Any]

    def report(self) -> str:
        c = self.campaign
        lines = [f"chaos campaign: {c.cases} cases, {c.replicas} replicas of {', '.join(SERVICES)}"
                 + (", a 3-node RabbitMQ cluster" if c.cluster else "")
                 + f": {len(self.kills)} kills in {self.elapsed:.0f} s, {self.messages} messages published, "
                 f"{self.letters} e-mails received"]
        lines += [f"  killed at {t:6.1f} s: {what}" for t, what in self.kills]
        lines += [f"  {k}: {v}" for k, v in self.figures.items()]
        lines += [f"  VIOLATION: {v}" for v in self.violations] or ["  every invariant holds"]
        return "\n".join(lines)


class ChaosRun(Run):
    """bench_ips's run, over replicas: HTTP goes to a live replica and tries the others when one is gone."""

    replicas: Replicas

    async def _call(self, package: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + 120
        while True:
            for url in self.replicas.urls(package):
                with contextlib.suppress(httpx.TransportError):
                    response = await self.client.request(method, f"{url}{path}", **kwargs)
                    if response.status_code < 500:
                        return response
            if time.monotonic() > deadline:
                probe = await asyncio.to_thread(database_probe, self.stack.infra.mongo_url)
                health = [await self._health(url) for url in self.replicas.urls(package)]
                raise TimeoutError(f"{method} {path}: no replica of {package} answered; /health: {health}; {probe}")
            await asyncio.sleep(0.5)

    async def _health(self, url: str) -> str:
        try:
            return str((await self.client.get(f"{url}/health", timeout=5)).status_code)
        except httpx.HTTPError as exc:
            return type(exc).__name__

    async def submit(self, prefix: str, i: int, token: dict[str, str]) -> str:
        t = time.monotonic()
        headers = {**token, "Idempotency-Key": f"{self.namespace}-{prefix}-{i}"}
        response = await self._call("intake", "POST", "/api/v1/aanvragen", headers=headers,
                                    json=application(clientReferentie=f"{prefix}-{i:05d}"))
        if response.status_code not in (200, 201):
            raise RuntimeError(f"submission refused: {response.status_code} {response.text[:300]}")
        case = str(response.json()["id"])
        self.submitted[case] = t
        return case

    async def decide(self, case: str, token: dict[str, str]) -> bool:
        response = await self._call("process_engine", "GET", f"/api/v1/zaken/{case}", headers=token)
        self.reads += 1
        tasks = response.json().get("taken", []) if response.status_code == 200 else []
        if not tasks:
            return False
        decided = await self._call("process_engine", "POST", f"/api/v1/taken/{tasks[0]['id']}/afronden",
                                   headers=token, json={"gegevens": {"besluit": "toekennen", "motivering": "Akkoord."}})
        if decided.status_code == 200:
            self.decided += 1
            return True
        if decided.status_code not in (404, 409):  # the case moved on (an earlier attempt went through)
            self.decide_errors.append(f"{decided.status_code} {decided.text[:200]}")
        return False

    async def official(self, k: int) -> None:
        token = bearer(f"behandelaar-{ROERMOND}-{k}", "gemeente", ROERMOND, "behandelaar",
                       name=f"Behandelaar {k}, werk en inkomen", mandates=MANDATES)
        while True:
            case = await self.ready.get()
            wait, deadline = 0.1, time.monotonic() + 60
            while time.monotonic() < deadline and case not in self.finished:
                with contextlib.suppress(TimeoutError, ValueError):
                    if await self.decide(case, token):
                        break
                await asyncio.sleep(wait)
                wait = min(2.0, wait * 2)

    async def sweep(self, cases: list[str]) -> None:
        """Every few seconds: the cases intake shows toegekend are done; a case not done for 20 s goes to the
        officials again (its reservation reply may have been lost to the listener with a killed broker)."""
        queued: dict[str, float] = {}
        while True:
            await asyncio.sleep(3)
            with contextlib.suppress(pymongo.errors.PyMongoError):
                statuses = await asyncio.to_thread(intake_statuses, self.stack.infra.mongo_url, self.namespace)
                for case in cases:
                    if statuses.get(case) == "toegekend" and case not in self.finished:
                        self.finished[case] = time.monotonic()
                        self.outcome[case] = "toegekend"
            now = time.monotonic()
            for case in cases:
                if case not in self.finished and now - max(self.submitted[case], queued.get(case, 0)) > 20:
                    queued[case] = now
                    self.ready.put_nowait(case)


def start_proxies(stack: ChaosStack) -> list[CuttingProxy]:
    """A cutting proxy in front of FerretDB and one in front of RabbitMQ (a single node); the services go through
    them, the harness (listener, invariants) does not."""
    assert not stack.cluster, "the proxies stand in front of a single RabbitMQ node"
    broker = urllib.parse.urlparse(stack.amqp_urls[0])
    proxies = [CuttingProxy("FerretDB", "127.0.0.1", stack.mongo_port).start(),
               CuttingProxy("RabbitMQ", "127.0.0.1", int(broker.port or 5672)).start()]
    stack.proxied = (f"amqp://guest:guest@127.0.0.1:{proxies[1].port}{broker.path or '/'}",
                     f"mongodb://127.0.0.1:{proxies[0].port}/")
    return proxies


def db(namespace: str, name: str) -> str:
    return f"{namespace}ipsflow_{name}".replace(".", "_")


def database_probe(mongo_url: str) -> str:
    """A read and a write of the campaign's FerretDB, each bounded (the services wait without a bound). Seen in
    the FerretDB front: a database whose 100 pooled SQLite connections are taken (open cursors) makes a write to it
    wait for good while it holds the front's one write lock, and then every write of every database waits."""
    outcome = []
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        mongo_url, maxPoolSize=1, serverSelectionTimeoutMS=5000, socketTimeoutMS=10_000)
    with client:
        probe = client["chaos_probe"]["writes"]
        for what, op in (("read", lambda: probe.find_one({"_id": "probe"})),
                         ("write", lambda: probe.update_one({"_id": "probe"}, {"$inc": {"n": 1}}, upsert=True))):
            t = time.monotonic()
            try:
                op()
                outcome.append(f"FerretDB {what} {time.monotonic() - t:.2f} s")
            except pymongo.errors.PyMongoError as exc:
                outcome.append(f"FerretDB {what}: {type(exc).__name__} after {time.monotonic() - t:.0f} s")
    return ", ".join(outcome)


def intake_statuses(mongo_url: str, namespace: str) -> dict[str, str]:
    with pymongo.MongoClient(mongo_url, maxPoolSize=1, serverSelectionTimeoutMS=3000) as client:
        return {str(d["_id"]): str(d.get("status")) for d in
                client[db(namespace, "intake")].aanvragen.find({}, {"status": 1})}


# --------------------------------------------------------------------------- the invariants


def check(stack: ChaosStack, namespace: str, cases: list[str], sink_count: int) -> tuple[list[str], dict[str, Any]]:
    """Every invariant of the campaign; returns the violations (empty: all hold) and the figures counted."""
    bad: list[str] = []
    figures: dict[str, Any] = {}
    expected = set(cases)
    with pymongo.MongoClient(stack.infra.mongo_url, maxPoolSize=2) as client:
        aanvragen = list(client[db(namespace, "intake")].aanvragen.find({}))
        figures["intake cases"] = len(aanvragen)
        if len(aanvragen) != len(expected) or {str(a["_id"]) for a in aanvragen} != expected:
            bad.append(f"intake holds {len(aanvragen)} cases, {len(expected)} submitted")
        not_granted = [a["_id"] for a in aanvragen if a.get("status") != "toegekend"]
        if not_granted:
            bad.append(f"{len(not_granted)} cases not toegekend: {not_granted[:5]}")
        refs = [a.get("client_referentie") for a in aanvragen]
        if None in refs or len(set(refs)) != len(refs):
            bad.append("a client reference was registered twice")

        grants = client[db(namespace, "grants")]
        per_case: dict[str, int] = {}
        for b in grants.beschikkingen.find({}):
            key = str(b.get("aanvraag_id") or b.get("aanvraagId") or (b.get("brief") or {}).get("aanvraagId"))
            per_case[key] = per_case.get(key, 0) + 1
        figures["beschikkingen"] = sum(per_case.values())
        wrong = {c: n for c, n in per_case.items() if n != 1}
        if wrong or set(per_case) != expected:
            bad.append(f"beschikkingen per case not exactly one: {len(per_case)} cases, {sum(per_case.values())} "
                       f"beschikkingen, e.g. {list(wrong.items())[:3]}")

        orders: dict[str, int] = {}
        for o in client[db(namespace, "payments")].opdrachten.find({}):
            key = str(o.get("aanvraag_id") or o.get("aanvraagId"))
            orders[key] = orders.get(key, 0) + 1
        figures["payment orders"] = sum(orders.values())
        if set(orders) != expected or any(n != 1 for n in orders.values()):
            bad.append(f"payment orders per case not exactly one: {len(orders)} cases, {sum(orders.values())} orders")

        letters: dict[str, int] = {}
        for m in client[db(namespace, "notifications")].berichten.find({}):
            key = str(m.get("aanvraag_id") or m.get("aanvraagId"))
            letters[key] = letters.get(key, 0) + 1
            if m.get("status") != "verzonden":
                bad.append(f"letter {m['_id']} is {m.get('status')}")
        figures["letters"] = sum(letters.values())
        if set(letters) != expected or any(n != 1 for n in letters.values()):
            bad.append(f"letters per case not exactly one: {len(letters)} cases, {sum(letters.values())} letters")
        figures["e-mails at the SMTP sink"] = sink_count
        if sink_count < len(expected):
            bad.append(f"{sink_count} e-mails arrived for {len(expected)} letters")

        buckets = list(grants.budgetposten.find({}))
        for head in grants.budgetten.find({}):
            ledger = met_posten(head, [b for b in buckets if b.get("ledger") == head["_id"]])
            entries = (ledger.get("reserveringen") or {}).values()
            committed = sum(int(e["bedragCents"]) for e in entries if e.get("status") == "vastgelegd")
            reserved = sum(int(e["bedragCents"]) for e in entries if e.get("status") != "vastgelegd")
            p, a = ledger["plafond_cents"], ledger["beschikbaar_cents"]
            r, v = ledger["gereserveerd_cents"], ledger["vastgelegd_cents"]
            figures[f"ledger {ledger['_id']}"] = f"ceiling {p}, available {a}, reserved {r}, committed {v}"
            if p - a != r + v or r != reserved or v != committed:
                bad.append(f"ledger {ledger['_id']}: ceiling {p} - available {a} != reserved {r} + committed {v}, "
                           f"or entries sum to reserved {reserved}, committed {committed}")

        engine = client[db(namespace, "process_engine")]
        incidents = engine.instances.count_documents({"incidents.resolved": False})
        figures["open incidents"] = incidents
        if incidents:
            bad.append(f"{incidents} engine instances have an open incident")
        for name in client.list_database_names():
            if name.startswith(db(namespace, "")):
                for coll in client[name].list_collection_names():
                    left = client[name][coll].count_documents({"has_outbox": True})
                    if left:
                        bad.append(f"{left} documents of {name}.{coll} still hold an outbox")

    vhost = urllib.parse.quote(urllib.parse.urlparse(stack.amqp_urls[0]).path.lstrip("/") or "/", safe="")
    with httpx.Client(base_url=stack.management_url, timeout=30) as mgmt:
        queues = [q for q in mgmt.get(f"/api/queues/{vhost}").json() if q["name"].startswith(namespace)]
    figures["queues (with DLQs and retry queues)"] = len(queues)
    for q in queues:
        if q.get("messages", 0):
            bad.append(f"queue {q['name']} holds {q['messages']} messages")
        if q.get("type") != "quorum" and not q["name"].endswith("luisteraar"):
            bad.append(f"queue {q['name']} is {q.get('type')}, not quorum")
    return bad, figures


def outboxes_empty(stack: ChaosStack, namespace: str) -> bool:
    """No document of the namespace holds an outbox: every event is published and its entry cleared (the relay
    clears a moment after publishing, unless a write of the document took the entries along: servicekit.relay)."""
    with contextlib.suppress(pymongo.errors.PyMongoError), pymongo.MongoClient(stack.infra.mongo_url,
                                                                               maxPoolSize=2) as client:
        return not any(client[name][coll].count_documents({"has_outbox": True}, limit=1)
                       for name in client.list_database_names() if name.startswith(db(namespace, ""))
                       for coll in client[name].list_collection_names())
    return False


def letters_settled(stack: ChaosStack, namespace: str) -> bool:
    """Every letter recorded ``verzonden``. A notifications replica killed between the SMTP server's acceptance and
    its record leaves the letter ``bezig`` with its e-mail already at the sink; after its lease another sender
    mails it again (SMTP is at-least-once) and records it, so the drain waits for that instead of checking early."""
    with contextlib.suppress(pymongo.errors.PyMongoError), pymongo.MongoClient(stack.infra.mongo_url,
                                                                               maxPoolSize=2) as client:
        return not client[db(namespace, "notifications")].berichten.count_documents(
            {"status": {"$ne": "verzonden"}}, limit=1)
    return False


async def queues_empty(stack: ChaosStack, namespace: str) -> bool:
    vhost = urllib.parse.quote(urllib.parse.urlparse(stack.amqp_urls[0]).path.lstrip("/") or "/", safe="")
    with contextlib.suppress(httpx.HTTPError, ValueError):
        async with httpx.AsyncClient(base_url=stack.management_url, timeout=10) as mgmt:
            queues = (await mgmt.get(f"/api/queues/{vhost}")).json()
        return all(not q.get("messages", 0) for q in queues if q["name"].startswith(namespace)
                   and not q["name"].endswith("luisteraar"))
    return False


# --------------------------------------------------------------------------- the campaign


async def run_campaign(stack: ChaosStack, c: Campaign) -> Outcome:
    t0 = time.monotonic()
    kills: list[tuple[float, str]] = []
    with temporary_namespace(stack.infra, "t") as namespace:
        logs = Path(tempfile.mkdtemp(prefix="ipsflow-chaos-logs-"))
        sink = Sink()
        smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
        smtp.start()
        proxies = start_proxies(stack) if c.cut_every else []
        replicas = Replicas(stack, namespace, logs, smtp.port, c.replicas)
        try:
            await asyncio.to_thread(replicas.start_all)
        except BaseException:
            for proxy in proxies:
                proxy.stop()
            raise
        log(t0, f"{replicas.started} service processes ready (logs in {logs})")
        run = ChaosRun({}, stack, namespace, sink, c.officials)  # type: ignore[arg-type]
        run.replicas = replicas
        connection = await aio_pika.connect_robust(stack.amqp_urls[0])
        cases: list[str] = []
        tasks = [asyncio.create_task(run.official(k)) for k in range(c.officials)]
        stop = asyncio.Event()

        async def chaos_loop() -> None:
            rng = random.Random(int(os.environ.get("IPSFLOW_CHAOS_SEED", "17")))
            while not stop.is_set():
                await asyncio.sleep(c.chaos_every * rng.uniform(0.5, 1.5))
                live = [key for key, s in replicas.procs.items() if s.proc.poll() is None]
                if not live:
                    continue
                package, k = rng.choice(sorted(live))
                pid = replicas.kill(package, k)
                kills.append((time.monotonic() - t0, f"SIGKILL {package} replica {k} (pid {pid})"))
                log(t0, kills[-1][1])
                # started again before the next kill: on a busy machine a start takes tens of seconds, and killing
                # faster than the replicas come back leaves no process to do the work
                await asyncio.to_thread(replicas.start, package, k)

        async def infra_faults() -> None:
            await asyncio.sleep(c.down_seconds * 2)
            if c.broker_kill:
                node = await asyncio.to_thread(stack.busiest_leader) if c.cluster else 0
                pid = await asyncio.to_thread(stack.kill_broker, node)
                what = (f"kill -9 RabbitMQ node {node + 1} of 3 (the leader of most queues)" if c.cluster
                        else "kill -9 RabbitMQ")
                kills.append((time.monotonic() - t0, f"{what} (beam.smp pid {pid})"))
                log(t0, kills[-1][1])
                await asyncio.sleep(c.down_seconds)
                await asyncio.to_thread(stack.start_broker)
                log(t0, "RabbitMQ started again")
            if c.ferret_kill:
                await asyncio.sleep(c.down_seconds)
                pid = await asyncio.to_thread(stack.kill_ferret)
                kills.append((time.monotonic() - t0, f"kill -9 FerretDB (pid {pid})"))
                log(t0, kills[-1][1])
                await asyncio.sleep(c.down_seconds)
                await asyncio.to_thread(stack.start_ferret)
                log(t0, "FerretDB started again")

        async def cut_loop() -> None:
            """In turn: a few connections to RabbitMQ, then to FerretDB, cut after their request went through and
            before its answer; then every open connection to RabbitMQ, then to FerretDB. The broker comes first: its
            traffic stops when the cases are done (the database's goes on: the services' timers and sweepers poll
            it), and a CI run once saw both of the broker's mid-request turns come after the last case (0 cut)."""
            rng = random.Random(int(os.environ.get("IPSFLOW_CHAOS_SEED", "17")))
            broker_first = sorted(proxies, key=lambda proxy: proxy.name != "RabbitMQ")
            turns = itertools.cycle([(proxy, whole) for whole in (False, True) for proxy in broker_first])
            while not stop.is_set():
                await asyncio.sleep(c.cut_every * rng.uniform(0.5, 1.5))
                proxy, whole = next(turns)
                if whole:
                    n = await asyncio.to_thread(proxy.cut_all)
                    what = f"cut all {n} open {proxy.name} connections"
                else:
                    n = await asyncio.to_thread(proxy.cut_mid_request, 3, 10.0)
                    what = f"cut {n} {proxy.name} connections mid-request (request delivered, answer dropped)"
                kills.append((time.monotonic() - t0, what))
                log(t0, what)

        try:
            await run.listen(connection)
            sweeper = asyncio.create_task(run.sweep(cases))
            chaos = [asyncio.create_task(chaos_loop())] if c.chaos_every else []
            chaos += [asyncio.create_task(cut_loop())] if proxies else []
            faults = asyncio.create_task(infra_faults())
            token = ggz()
            gate = asyncio.Semaphore(c.concurrency)
            started = time.monotonic()

            room = asyncio.Condition()
            submitting = 0

            async def one(i: int) -> None:
                nonlocal submitting
                def over() -> bool:
                    return bool(c.submit_for) and time.monotonic() - started > c.submit_for

                async with gate:
                    if c.in_flight:
                        async with room:  # the progress loop wakes it every second
                            await room.wait_for(lambda: over() or submitting + sum(
                                case not in run.finished for case in cases) < c.in_flight)
                    if over():
                        return
                    submitting += 1
                    try:
                        cases.append(await run.submit("CHAOS", i, token))
                    finally:
                        submitting -= 1

            async def progress() -> None:
                """A line a minute: how far the campaign is and what was killed so far."""
                last = time.monotonic()
                while True:
                    await asyncio.sleep(1)
                    async with room:
                        room.notify_all()
                    if time.monotonic() - last >= 60:
                        last = time.monotonic()
                        kinds = collections.Counter(kill_kind(what) for _, what in kills)
                        probe = await asyncio.to_thread(database_probe, stack.infra.mongo_url)
                        log(t0, f"progress: {len(cases)}/{c.cases} submitted, "
                                f"{sum(case in run.finished for case in cases)} toegekend, {sink.received} e-mails; "
                                f"{len(kills)} kills ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))}); "
                                f"{probe}")

            tasks.append(asyncio.create_task(progress()))
            await asyncio.gather(*(one(i) for i in range(c.cases)))
            log(t0, f"{len(cases)} cases submitted" + (f" (of {c.cases}: the {c.submit_for:.0f} s to submit in were "
                                                       f"over)" if len(cases) < c.cases else ""))
            figures_before = {"cases submitted": f"{len(cases)} of {c.cases} in {time.monotonic() - started:.0f} s"}
            await faults
            deadline = time.monotonic() + c.timeout
            last = 0.0
            while time.monotonic() < deadline:
                done = sum(case in run.finished for case in cases)
                cuts = sum(what.startswith("cut ") for _, what in kills)
                if done == len(cases) and cuts >= c.min_cuts:
                    break
                if time.monotonic() - last > 15:
                    log(t0, f"{done}/{len(cases)} toegekend, {sink.received} e-mails")
                    last = time.monotonic()
                await asyncio.sleep(1)
            stop.set()
            for task in chaos:
                task.cancel()
            await asyncio.gather(*chaos, return_exceptions=True)
            log(t0, f"chaos over; {sum(case in run.finished for case in cases)}/{len(cases)} toegekend")
            # the last letters and relays (every outbox published and cleared), then every queue drains
            while time.monotonic() < deadline and not (
                    sink.received >= len(cases) and await asyncio.to_thread(outboxes_empty, stack, namespace)
                    and await asyncio.to_thread(letters_settled, stack, namespace)
                    and await queues_empty(stack, namespace)):
                await asyncio.sleep(1)
            await asyncio.sleep(3)
            elapsed = time.monotonic() - started
            sweeper.cancel()
            messages = await asyncio.to_thread(published, stack.management_url, stack.amqp_urls[0], namespace)
            bad, figures = await asyncio.to_thread(check, stack, namespace, cases, sink.received)
            figures = {**figures_before, **figures}
            figures["decide errors"] = run.decide_errors[:3]
            figures["kills by kind"] = ", ".join(f"{k} {n}" for k, n in sorted(
                collections.Counter(kill_kind(what) for _, what in kills).items()))
            for proxy in proxies:
                figures[f"{proxy.name} proxy"] = (f"{proxy.accepted} connections, {proxy.cut_mid} cut mid-request, "
                                                  f"{proxy.cut_open} cut while open")
            if not bad:  # the logs are kept only for a campaign that failed
                figures["service logs"] = "removed"
                shutil.rmtree(logs, ignore_errors=True)
            else:
                figures["service logs"] = str(logs)
            return Outcome(c, kills, elapsed, messages, sink.received, bad, figures)
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await connection.close()
            await run.client.aclose()
            await asyncio.to_thread(replicas.stop)
            for proxy in proxies:
                proxy.stop()
            smtp.stop()


def campaign(c: Campaign) -> Outcome:
    with chaos_stack(cluster=c.cluster) as stack:
        print(f"chaos stack: {stack.amqp_urls}, {stack.infra.mongo_url} (data in {stack.base})", flush=True)
        outcome = asyncio.run(run_campaign(stack, c))
    print(outcome.report(), flush=True)
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--chaos-every", type=float, default=4.0)
    parser.add_argument("--broker-kill", action="store_true")
    parser.add_argument("--ferret-kill", action="store_true")
    parser.add_argument("--cluster", action="store_true")
    parser.add_argument("--timeout", type=float, default=3600)
    a = parser.parse_args()
    outcome = campaign(Campaign(a.cases, a.replicas, a.concurrency, chaos_every=a.chaos_every,
                                broker_kill=a.broker_kill, ferret_kill=a.ferret_kill, cluster=a.cluster,
                                timeout=a.timeout))
    raise SystemExit(1 if outcome.violations else 0)


if __name__ == "__main__":
    main()

