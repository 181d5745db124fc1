"""Benchmark: engine cycles per second per core for a 20-task process, next to bare SpiffWorkflow.

An engine cycle is what the process engine does for every reply it receives: load the instance document
from the database, restore the workflow, deliver the reply, run the engine, serialise, and write the
document back (revision-checked, with the next command in its outbox). The bare cycle is the same
SpiffWorkflow work with nothing around it: restore from the blob, complete the task, run, serialise.
Both run in this process, one after the other, on the same definition. Prints figures; not a test.

Also prints what an instance costs to store (issue 14): the state's size and the time to serialise and
restore it, for the 20-task process halfway and for an IPS case of bpmn/ips_traject.bpmn (granted, its
trajectory running), and the instance document's size. "before" is the engine as of ``--against`` (default
5d0ed70: the state with its spec embedded, gzip, the whole history rewritten on every step), loaded from git
into this same process, so that both are measured in one run, round by round in turn (the machine is
shared and noisy). Without git history only "now" is measured.

    PYTHONPATH=. .venv/bin/python tests/perf/bench_engine.py [--cases 10] [--rounds 3] [--against <commit>]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import bson
from pymongo import AsyncMongoClient
from SpiffWorkflow.bpmn.specs.event_definitions import timer as spiff_timer

import process_engine.engine
import process_engine.repository
from ipsflow_cli.namespaces import new_namespace
from ipsflow_cli.run import local_stack_urls
from process_engine import runtime as rt
from process_engine.bootstrap import definition_files, load_catalogue
from process_engine.engine import COMMAND_COMPLETED, Engine
from servicekit.envelope import new_event

ROOT = Path(__file__).resolve().parents[2]
ENGINE_FILES = ("__init__.py", "scripting.py", "runtime.py", "repository.py", "engine.py")

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


def bare_cycles(parsed: Any, cases: int, rt: ModuleType = rt) -> tuple[int, float, float]:
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
    """The same work through the engine: every reply is a load-deliver-run-save against the database."""
    cycles, wall, cpu = 0, time.perf_counter(), time.process_time()
    for c in range(cases):
        case_id = f"{prefix}-{c}"
        await engine.handle_event(new_event("ips.bench.gestart.v1", service="bench", subject=case_id, data={}))
        for _ in range(TASKS):
            doc = await engine.instances.store.get(case_id)
            assert doc is not None
            command = doc["outbox"][-1]["id"]
            reply = new_event(COMMAND_COMPLETED, service="bench", subject=case_id, data={"ok": True})
            reply = reply.model_copy(update={"causationid": command})
            await engine.handle_event(reply)
            cycles += 1
        final = await engine.instances.store.get(case_id)
        assert final is not None and final["status"] == "completed", final and final["status"]
    return cycles, time.perf_counter() - wall, time.process_time() - cpu


# --------------------------------------------------------------------------- before: the engine from git


def load_before(commit: str) -> dict[str, ModuleType] | None:
    """services/process_engine/{runtime,engine,...}.py as of ``commit``, as package ``process_engine_before``."""
    folder = Path(tempfile.mkdtemp()) / "process_engine_before"
    folder.mkdir()
    for name in ENGINE_FILES:
        shown = subprocess.run(["git", "show", f"{commit}:services/process_engine/{name}"], cwd=ROOT,
                               capture_output=True, text=True, check=False)
        if shown.returncode != 0:
            print(f"(no git history for {commit}: measuring the current engine only)")
            return None
        text = shown.stdout.replace("from process_engine import", "from process_engine_before import")
        (folder / name).write_text(text.replace("from process_engine.", "from process_engine_before."))
    timer_datetime = spiff_timer.datetime
    sys.path.insert(0, str(folder.parent))
    try:
        modules = {"rt": importlib.import_module("process_engine_before.runtime"),
                   "engine": importlib.import_module("process_engine_before.engine"),
                   "repository": importlib.import_module("process_engine_before.repository")}
    finally:
        sys.path.remove(str(folder.parent))
    # both versions swap Spiff's timer clock at import; "now" keeps its own (the old one's runs on real time)
    spiff_timer.datetime = timer_datetime
    return modules


NOW = {"rt": rt, "engine": process_engine.engine, "repository": process_engine.repository}


# --------------------------------------------------------------------------- what a state costs


def twenty_task_halfway(side: dict[str, ModuleType]) -> tuple[Any, Any]:
    r = side["rt"]
    parsed = r.parse_definition({"bench.bpmn": twenty_task_process()})
    workflow, result = r.start_instance(parsed, "ips.bench.gestart.v1", {}, case_id="state-20")
    for _ in range(TASKS // 2):
        result = r.complete_command(workflow, result.commands[0].command_id, {"ok": True})
    return parsed, workflow


def ips_case(side: dict[str, ModuleType]) -> tuple[Any, Any] | None:
    """An IPS case of bpmn/ips_traject.bpmn granted by the official, its trajectory running (the shape
    of most stored instances), driven with the replies of tests/bpmn/test_ips_traject.py."""
    from tests.bpmn.test_ips_traject import AANVRAAG, SIGNER, standard_replies

    r = side["rt"]
    try:
        parsed = r.parse_definition(definition_files(str(ROOT / "bpmn")),
                                    load_catalogue(str(ROOT / "bpmn" / "README.md")))
    except Exception as exc:  # the diagram may be mid-edit in a shared checkout
        print(f"(bpmn/ips_traject.bpmn does not parse: {str(exc)[:120]}; no IPS figures)")
        return None
    replies = standard_replies()
    workflow, result = r.start_instance(parsed, "ips.aanvraag.ingediend.v1", dict(AANVRAAG), case_id="a-1")

    def answer(result: Any) -> None:
        pending = list(result.commands)
        while pending:
            command = pending.pop(0)
            reply = replies.get(command.command_type)
            if reply is not None:
                pending.extend(r.complete_command(workflow, command.command_id, reply(command.params)).commands)

    answer(result)
    [task] = r.ready_user_tasks(workflow)
    answer(r.complete_user_task(workflow, task.task_id, {"besluit": "toekennen", "motivering": "Voldoet."},
                                {"ondertekenaar": SIGNER}))
    return parsed, workflow


def timed_ms(fn: Callable[[], Any], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1000


def state_figures(sides: dict[str, dict[str, ModuleType]], rounds: int) -> None:
    for label, make in (("20-task process, halfway", twenty_task_halfway), ("IPS case, trajectory running", ips_case)):
        made = {name: make(side) for name, side in sides.items()}
        if any(m is None for m in made.values()):
            continue
        blobs = {name: sides[name]["rt"].serialize(wf) for name, (_, wf) in made.items()}
        ser: dict[str, list[float]] = {name: [] for name in sides}
        de: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(rounds * 3):  # sides in turn, round by round
            for name, (parsed, wf) in made.items():
                r = sides[name]["rt"]
                ser[name].append(timed_ms(lambda r=r, wf=wf: r.serialize(wf), 20))
                de[name].append(timed_ms(lambda r=r, p=parsed, b=blobs[name]: r.deserialize(p, b), 20))
        print(f"  state of the {label} (median of {rounds * 3} rounds of 20, sides in turn):")
        for name in sides:
            print(f"    {name:<6} stored {len(blobs[name]) / 1024:6.1f} KB"
                  f"   serialise {statistics.median(ser[name]):6.2f} ms"
                  f"   restore {statistics.median(de[name]):6.2f} ms")


# --------------------------------------------------------------------------- engine vs bare


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mongo", default=local_stack_urls()["IPSFLOW_MONGO_URL"])
    parser.add_argument("--against", default="5d0ed70")
    args = parser.parse_args()
    before = load_before(args.against) if args.against else None
    sides = {"before": before, "now": NOW} if before is not None else {"now": NOW}
    files = {"bench.bpmn": twenty_task_process()}
    client: AsyncMongoClient = AsyncMongoClient(args.mongo, maxPoolSize=4, tz_aware=True)
    prefix = f"{new_namespace('bench')}engine".replace(".", "_")
    results: dict[str, dict[str, list[tuple[int, float, float]]]] = {}
    documents: dict[str, dict[str, int]] = {}
    try:
        engines, parsed = {}, {}
        for name, side in sides.items():
            db = client[f"{prefix}_{name}"]
            engines[name] = side["engine"].Engine(side["repository"].DefinitionRepository(db),
                                                  side["repository"].InstanceRepository(db))
            await engines[name].deploy(files, deployed_by="bench")
            parsed[name] = side["rt"].parse_definition(files)
            bare_cycles(parsed[name], 1, side["rt"])  # warm-up: imports, caches
            results[name] = {"bare": [], "engine": []}
        for r in range(args.rounds):  # alternate to spread machine noise over both sides
            for name, side in sides.items():
                results[name]["bare"].append(bare_cycles(parsed[name], args.cases, side["rt"]))
                results[name]["engine"].append(await engine_cycles(engines[name], args.cases, f"{name}-{r}"))
        for name, engine in engines.items():
            doc = await engine.instances.store.get(f"{name}-0-0")
            assert doc is not None
            # without the outbox: the relay of a running service clears it (here nothing publishes)
            documents[name] = {key: len(bson.encode({key: value})) for key, value in doc.items() if key != "outbox"}
    finally:
        for name in sides:
            await client.drop_database(f"{prefix}_{name}")
        await client.close()

    print(f"20-task process, {args.cases} cases x {TASKS} replies per round, {args.rounds} rounds"
          + (f"; before = {args.against}" if before is not None else ""))
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
    if "before" in sides:
        speed = {name: sum(r[0] for r in results[name]["engine"]) / sum(r[1] for r in results[name]["engine"])
                 for name in sides}
        print(f"  engine cycles/s wall, now / before: {speed['now'] / speed['before']:.2f}")
    for name in sides:
        largest = sorted(documents[name].items(), key=lambda kv: -kv[1])[:4]
        print(f"  {name:<6} instance document of a completed 20-task case, outbox left out:"
              f" {sum(documents[name].values()) / 1024:.1f} KB (BSON); largest: "
              + ", ".join(f"{key} {size / 1024:.1f} KB" for key, size in largest))
    state_figures(sides, args.rounds)


if __name__ == "__main__":
    asyncio.run(main())
