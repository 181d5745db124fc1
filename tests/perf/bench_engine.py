"""Benchmark: engine cycles per second per core for a 20-task process, next to bare SpiffWorkflow.

An engine cycle is what the process engine does for every reply it receives: load the instance document
from the database, restore the workflow, deliver the reply, run the engine, serialise, and write the
document back (revision-checked, with the next command in its outbox), then its read-model sync. The bare
cycle is the same SpiffWorkflow work with nothing around it: restore from the blob, complete the task, run,
serialise. Both run in one process, one after the other, on the same definition. The reply to the next
command is built from the engine's own outbox hook (``Engine.on_outbox``), as a service would get the command
from the broker: the harness reads nothing from the database per cycle. Prints figures; not a test.

Also prints what an instance costs to store (issue 14): the state's size and the time to serialise and
restore it, for the 20-task process halfway and for an IPS case of bpmn/ips_traject.bpmn (granted, its
trajectory running), and the instance document's size, and per engine cycle the database commands and the
time they took (pymongo's command monitoring, as the engine process sees them).

"before" is the engine as of ``--against <commit>``: ``services/`` of that commit (git archive) in a worker
process of its own, "now" this checkout's in another; the parent runs them round by round in turn (the machine
is shared and noisy) against the same database server, the same diagram (this checkout's bpmn/ and the
generated 20-task process) and the same workload (this file's cycles). Without git history only "now" is
measured. ``--profile`` adds a cProfile of the engine cycles per side (the top functions by own time).

    PYTHONPATH=. .venv/bin/python tests/perf/bench_engine.py [--cases 10] [--rounds 3] [--against <commit>]
        [--profile]

``--against DIR`` takes the services of a checkout instead (``DIR/services``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import bson
from pymongo import AsyncMongoClient, monitoring

from process_engine import runtime as rt
from process_engine.bootstrap import definition_files, load_catalogue
from process_engine.engine import COMMAND_COMPLETED, Engine
from process_engine.repository import DefinitionRepository, InstanceRepository
from servicekit.envelope import new_event

ROOT = Path(__file__).resolve().parents[2]

TASKS = 20
NS = 'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" ' \
     'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"'


def twenty_task_process() -> bytes:
    tasks, flows = [], []
    previous = "start"
    for i in range(1, TASKS + 1):
        tasks.append(f'<bpmn:serviceTask id="T{i}"><bpmn:extensionElements>'
                     f'<spiffworkflow:serviceTaskOperator id="ips.bench.stap.v1"><spiffworkflow:parameters>'
                     f'<spiffworkflow:parameter id="stap" type="int" value="{i}"/></spiffworkflow:parameters>'
                     f'</spiffworkflow:serviceTaskOperator></bpmn:extensionElements></bpmn:serviceTask>')
        flows.append(f'<bpmn:sequenceFlow id="F{i}" sourceRef="{previous}" targetRef="T{i}"/>')
        previous = f"T{i}"
    flows.append(f'<bpmn:sequenceFlow id="Fend" sourceRef="{previous}" targetRef="end"/>')
    return (f'<?xml version="1.0" encoding="UTF-8"?><bpmn:definitions {NS} id="D" targetNamespace="x">'
            '<bpmn:message id="M" name="ips.bench.gestart.v1"/>'
            '<bpmn:process id="bench_twintig" isExecutable="true">'
            '<bpmn:startEvent id="start"><bpmn:messageEventDefinition messageRef="M"/></bpmn:startEvent>'
            + "".join(tasks) + '<bpmn:endEvent id="end"/>' + "".join(flows)
            + "</bpmn:process></bpmn:definitions>").encode()


def bare_cycles(parsed: Any, cases: int) -> tuple[int, float, float]:
    """Restore → complete the open command → run → serialise, TASKS times per case, in memory."""
    cycles, wall, cpu = 0, time.perf_counter(), time.process_time()
    for c in range(cases):
        workflow, result = rt.start_instance(parsed, "ips.bench.gestart.v1", {}, case_id=f"bare-{c}")
        blob = rt.serialize(workflow)
        command = result.commands[0]
        for _ in range(TASKS):
            workflow = rt.deserialize(parsed, blob)
            result = rt.complete_command(workflow, command.command_id, {"ok": True})
            blob = rt.serialize(workflow)
            cycles += 1
            if result.commands:
                command = result.commands[0]
    return cycles, time.perf_counter() - wall, time.process_time() - cpu


async def engine_cycles(engine: Engine, cases: int, prefix: str = "engine") -> tuple[int, float, float]:
    """The same work through the engine: every reply is a load-deliver-run-save against the database. The next
    command comes from the engine's outbox hook (what its relay would publish), not from a read of ours."""
    sent: dict[str, str] = {}
    engine.on_outbox = lambda case_id, doc: sent.__setitem__(case_id, doc["outbox"][-1]["id"])
    cycles, wall, cpu = 0, time.perf_counter(), time.process_time()
    for c in range(cases):
        case_id = f"{prefix}-{c}"
        await engine.handle_event(new_event("ips.bench.gestart.v1", service="bench", subject=case_id, data={}))
        for _ in range(TASKS):
            reply = new_event(COMMAND_COMPLETED, service="bench", subject=case_id, data={"ok": True})
            reply = reply.model_copy(update={"causationid": sent.pop(case_id)})
            await engine.handle_event(reply)
            cycles += 1
        assert case_id not in sent, "the engine sent a command after the last step"
    final = await engine.instances.store.get(f"{prefix}-{cases - 1}")
    assert final is not None and final["status"] == "completed", final and final["status"]
    return cycles, time.perf_counter() - wall, time.process_time() - cpu


# --------------------------------------------------------------------------- what a state costs


def twenty_task_halfway() -> tuple[Any, Any]:
    parsed = rt.parse_definition({"bench.bpmn": twenty_task_process()})
    workflow, result = rt.start_instance(parsed, "ips.bench.gestart.v1", {}, case_id="state-20")
    for _ in range(TASKS // 2):
        result = rt.complete_command(workflow, result.commands[0].command_id, {"ok": True})
    return parsed, workflow


def ips_case() -> tuple[Any, Any] | None:
    """An IPS case of bpmn/ips_traject.bpmn granted by the official, its trajectory running (the shape
    of most stored instances), driven with the replies of tests/bpmn/test_ips_traject.py."""
    from tests.bpmn.test_ips_traject import AANVRAAG, SIGNER, standard_replies

    try:
        parsed = rt.parse_definition(definition_files(str(ROOT / "bpmn")),
                                     load_catalogue(str(ROOT / "bpmn" / "README.md")))
    except Exception as exc:  # the diagram may be mid-edit in a shared checkout
        print(f"(bpmn/ips_traject.bpmn does not parse: {str(exc)[:120]}; no IPS figures)", file=sys.stderr)
        return None
    replies = standard_replies()
    workflow, result = rt.start_instance(parsed, "ips.aanvraag.ingediend.v1", dict(AANVRAAG), case_id="a-1")

    def answer(result: Any) -> None:
        pending = list(result.commands)
        while pending:
            command = pending.pop(0)
            reply = replies.get(command.command_type)
            if reply is not None:
                pending.extend(rt.complete_command(workflow, command.command_id, reply(command.params)).commands)

    answer(result)
    [task] = rt.ready_user_tasks(workflow)
    answer(rt.complete_user_task(workflow, task.task_id, {"besluit": "toekennen", "motivering": "Voldoet."},
                                 {"ondertekenaar": SIGNER}))
    return parsed, workflow


def timed_ms(fn: Callable[[], Any], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1000


STATES: dict[str, Callable[[], tuple[Any, Any] | None]] = {
    "20-task process, halfway": twenty_task_halfway, "IPS case, trajectory running": ips_case}


# --------------------------------------------------------------------------- a side: one worker process


class CommandCounter(monitoring.CommandListener):
    """The database commands the engine process sends and the time until each answer came (per cycle)."""

    def __init__(self) -> None:
        self.commands: dict[str, int] = {}
        self.seconds = 0.0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands[event.command_name] = self.commands.get(event.command_name, 0) + 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self.seconds += event.duration_micros / 1e6

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.seconds += event.duration_micros / 1e6


async def worker(name: str, mongo: str, database: str, cases: int, proto: IO[str]) -> None:
    """One side: answers the parent's requests (one JSON line each) until "quit"."""
    from servicekit.logging import configure_logging

    configure_logging("process_engine")  # as the service logs (stderr, JSON); the parent keeps it in a file
    counter = CommandCounter()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo, maxPoolSize=4, tz_aware=True,
                                                                 event_listeners=[counter])
    db = client[database]
    files = {"bench.bpmn": twenty_task_process()}
    engine = Engine(DefinitionRepository(db), InstanceRepository(db))
    await engine.deploy(files, deployed_by="bench")
    parsed = rt.parse_definition(files)
    bare_cycles(parsed, 1)  # warm-up: imports, caches
    await engine_cycles(engine, 1, f"{name}-warm")
    states = {label: make() for label, make in STATES.items()}
    blobs = {label: rt.serialize(made[1]) for label, made in states.items() if made is not None}
    profile = cProfile.Profile()
    to_thread = asyncio.to_thread

    async def inline(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    try:
        for line in sys.stdin:
            request = json.loads(line)
            op = request["op"]
            answer: Any = None
            if op == "bare":
                answer = bare_cycles(parsed, cases)
            elif op == "engine":
                counter.commands, counter.seconds = {}, 0.0
                if request.get("profile"):
                    profile.enable()
                    asyncio.to_thread = inline  # type: ignore[assignment]  # cProfile sees this thread only
                try:
                    n, wall, cpu = await engine_cycles(engine, cases, f"{name}-{request['round']}")
                finally:
                    profile.disable()
                    asyncio.to_thread = to_thread
                answer = [n, wall, cpu, counter.commands, counter.seconds]
            elif op == "state":
                label = request["label"]
                if label in blobs:
                    state_parsed, wf = states[label]  # type: ignore[misc]
                    blob = blobs[label]
                    answer = [len(blob), timed_ms(lambda wf=wf: rt.serialize(wf), 20),
                              timed_ms(lambda p=state_parsed, b=blob: rt.deserialize(p, b), 20)]
            elif op == "document":
                doc = await engine.instances.store.get(f"{name}-0-0")
                assert doc is not None
                # without the outbox: the relay of a running service clears it (here nothing publishes)
                answer = {key: len(bson.encode({key: value})) for key, value in doc.items() if key != "outbox"}
            elif op == "profile":
                text = io.StringIO()
                stats = pstats.Stats(profile, stream=text)
                stats.sort_stats("tottime").print_stats(request["top"])
                stats.sort_stats("cumulative").print_stats(request["top"] * 2)
                answer = text.getvalue()
            elif op == "quit":
                break
            proto.write(json.dumps(answer) + "\n")
            proto.flush()
    finally:
        await client.drop_database(database)
        await client.close()


def worker_main(args: argparse.Namespace) -> None:
    # stdout is the parent's line protocol: whatever else prints (Spiff, a stray print) goes to stderr
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    asyncio.run(worker(args.worker, args.mongo, args.database, args.cases, proto))


class Side:
    """A worker process running a benchmark file (``command``: the file and its arguments) on ``services``
    (this checkout's, or an old commit's), answering one JSON line per request line; its stderr goes to a log."""

    def __init__(self, name: str, services: Path, command: list[str], logs: Path) -> None:
        self.name = name
        self.log = logs / f"{name}.log"
        # the side's services first; this checkout's root after them for tests.bpmn (the same diagram's replies)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(services), str(ROOT)])}
        self.process = subprocess.Popen(
            [sys.executable, *command], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log.open("w"),
            text=True, env=env, cwd=services.parent)

    def ask(self, **request: Any) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            tail = self.log.read_text()[-3000:]
            raise RuntimeError(f"the {self.name} worker stopped; the end of {self.log}:\n{tail}")
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.process.stdin.close()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()


def services_of(commit: str, into: Path) -> Path | None:
    """``services/`` as of ``commit``, unpacked under ``into``; None without git history."""
    archive = subprocess.run(["git", "archive", commit, "services"], cwd=ROOT, capture_output=True, check=False)
    if archive.returncode != 0:
        print(f"(no git history for {commit}: {archive.stderr.decode().strip()[:200]}; measuring now only)")
        return None
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "services"


# --------------------------------------------------------------------------- engine vs bare


def report(args: argparse.Namespace, sides: dict[str, Side],
           results: dict[str, dict[str, list[Any]]], documents: dict[str, dict[str, int]]) -> None:
    print(f"20-task process, {args.cases} cases x {TASKS} replies per round, {args.rounds} rounds, sides in turn"
          + (f"; before = {args.against}" if "before" in sides else "")
          + f"; load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name in sides:
        rates = {}
        for kind, rounds in results[name].items():
            n = sum(r[0] for r in rounds)
            wall = sum(r[1] for r in rounds)
            cpu = sum(r[2] for r in rounds)
            rates[kind] = (n / wall, n / cpu)
            print(f"  {name:<6} {kind:<6} {n:5d} cycles  {n / wall:8.1f} cycles/s wall  {n / cpu:8.1f} cycles/s"
                  f" per core (CPU)  {1000 * wall / n:6.2f} ms/cycle  {1000 * cpu / n:6.2f} CPU ms/cycle")
        print(f"  {name:<6} ratio engine/bare (wall): {rates['engine'][0] / rates['bare'][0]:.2f}   "
              f"(per core, CPU of this process): {rates['engine'][1] / rates['bare'][1]:.2f}   goal >= 0.5")
        n = sum(r[0] for r in results[name]["engine"])
        commands: dict[str, int] = {}
        for r in results[name]["engine"]:
            for command, count in r[3].items():
                commands[command] = commands.get(command, 0) + count
        waited = sum(r[4] for r in results[name]["engine"]) / n
        print(f"  {name:<6} database per engine cycle: {sum(commands.values()) / n:.2f} commands ("
              + ", ".join(f"{c} {k / n:.2f}" for c, k in sorted(commands.items(), key=lambda kv: -kv[1]))
              + f"), {1000 * waited:.2f} ms until their answers")
        # A cycle waits for its write before the next reply comes (cycles one after the other): even an engine
        # that added nothing to the bare cycle but that wait would reach only this ratio.
        bare_cycle = 1 / rates["bare"][0]
        print(f"  {name:<6} the ratio an engine would reach that added only this wait to the bare cycle: "
              f"{bare_cycle / (bare_cycle + waited):.2f}")
    if "before" in sides:
        speed = {name: sum(r[0] for r in results[name]["engine"]) / sum(r[1] for r in results[name]["engine"])
                 for name in sides}
        print(f"  engine cycles/s wall, now / before: {speed['now'] / speed['before']:.2f}")
    for name in sides:
        largest = sorted(documents[name].items(), key=lambda kv: -kv[1])[:4]
        print(f"  {name:<6} instance document of a completed 20-task case, outbox left out:"
              f" {sum(documents[name].values()) / 1024:.1f} KB (BSON); largest: "
              + ", ".join(f"{key} {size / 1024:.1f} KB" for key, size in largest))


def state_figures(sides: dict[str, Side], rounds: int) -> None:
    for label in STATES:
        taken: dict[str, list[Any]] = {name: [] for name in sides}
        for _ in range(rounds * 3):  # sides in turn, round by round
            for name, side in sides.items():
                taken[name].append(side.ask(op="state", label=label))
        if any(None in figures for figures in taken.values()):
            continue
        print(f"  state of the {label} (median of {rounds * 3} rounds of 20, sides in turn):")
        for name, figures in taken.items():
            print(f"    {name:<6} stored {figures[0][0] / 1024:6.1f} KB"
                  f"   serialise {statistics.median(f[1] for f in figures):6.2f} ms"
                  f"   restore {statistics.median(f[2] for f in figures):6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mongo", help="default: the local stack's")
    parser.add_argument("--against", default="b5a480c", help="a commit, or a checkout's directory")
    parser.add_argument("--profile", action="store_true", help="cProfile the engine cycles of each side")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return
    # the parent's only: a worker runs on a side's services, which may be older than these helpers
    from ipsflow_cli.namespaces import new_namespace
    from ipsflow_cli.run import local_stack_urls

    args.mongo = args.mongo or local_stack_urls()["IPSFLOW_MONGO_URL"]
    prefix = f"{new_namespace('bench')}engine".replace(".", "_")
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        if args.against and Path(args.against, "services").is_dir():  # a checkout (e.g. a git worktree)
            old: Path | None = Path(args.against, "services").resolve()
        else:
            old = services_of(args.against, Path(tmp) / "before") if args.against else None
        trees = {"before": old, "now": ROOT / "services"} if old is not None else {"now": ROOT / "services"}
        sides = {name: Side(name, services, [__file__, "--worker", name, "--mongo", args.mongo, "--database",
                                             f"{prefix}_{name}", "--cases", str(args.cases)], Path(tmp))
                 for name, services in trees.items()}
        try:
            results: dict[str, dict[str, list[Any]]] = {name: {"bare": [], "engine": []} for name in sides}
            for r in range(args.rounds):  # alternate to spread machine noise over both sides
                for name, side in sides.items():
                    results[name]["bare"].append(side.ask(op="bare"))
                    results[name]["engine"].append(side.ask(op="engine", round=r, profile=args.profile))
            documents = {name: side.ask(op="document") for name, side in sides.items()}
            report(args, sides, results, documents)
            state_figures(sides, args.rounds)
            if args.profile:
                for name, side in sides.items():
                    print(f"--- {name}: cProfile of the engine cycles, by own time (the event loop and the"
                          f" worker thread together)\n{side.ask(op='profile', top=25)}")
        finally:
            for side in sides.values():
                side.close()


if __name__ == "__main__":
    main()
