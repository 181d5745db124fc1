"""Benchmark: engine cycles per second per core for a 20-task process, next to bare SpiffWorkflow.

An engine cycle is what the process engine does for every reply it receives: load the instance document
from the database, restore the workflow, deliver the reply, run the engine, serialise, and write the
document back (revision-checked, with the next command in its outbox). The bare cycle is the same
SpiffWorkflow work with nothing around it: restore from the blob, complete the task, run, serialise.
Both run in this process, one after the other, on the same definition. Prints figures; not a test.

    PYTHONPATH=. .venv/bin/python tests/perf/bench_engine.py [--cases 10]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from pymongo import AsyncMongoClient

from ipsflow_cli.namespaces import new_namespace
from process_engine import runtime as rt
from process_engine.engine import COMMAND_COMPLETED, Engine
from process_engine.repository import DefinitionRepository, InstanceRepository
from servicekit.envelope import new_event

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


def bare_cycles(parsed: rt.ParsedDefinition, cases: int) -> tuple[int, float, float]:
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


async def engine_cycles(engine: Engine, cases: int) -> tuple[int, float, float]:
    """The same work through the engine: every reply is a load-deliver-run-save against the database."""
    cycles, wall, cpu = 0, time.perf_counter(), time.process_time()
    for c in range(cases):
        case_id = f"engine-{c}"
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


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--mongo", default="mongodb://127.0.0.1:27017/")
    args = parser.parse_args()
    files = {"bench.bpmn": twenty_task_process()}
    parsed = rt.parse_definition(files)
    client: AsyncMongoClient = AsyncMongoClient(args.mongo, maxPoolSize=4, tz_aware=True)
    db_name = f"{new_namespace('bench')}engine".replace(".", "_")
    db = client[db_name]
    engine = Engine(DefinitionRepository(db), InstanceRepository(db))
    try:
        await engine.deploy(files, deployed_by="bench")
        bare_cycles(parsed, 1)  # warm-up: imports, caches
        results = {"bare": [], "engine": []}
        for _ in range(2):  # alternate to spread machine noise over both sides
            results["bare"].append(bare_cycles(parsed, args.cases))
            results["engine"].append(await engine_cycles(engine, args.cases))
    finally:
        await client.drop_database(db_name)
        await client.close()

    print(f"20-task process, {args.cases} cases x {TASKS} replies per round, 2 rounds")
    rates = {}
    for side, rounds in results.items():
        n = sum(r[0] for r in rounds)
        wall = sum(r[1] for r in rounds)
        cpu = sum(r[2] for r in rounds)
        rates[side] = (n / wall, n / cpu)
        print(f"  {side:<6} {n:5d} cycles  {n / wall:8.1f} cycles/s wall  {n / cpu:8.1f} cycles/s per core (CPU)"
              f"  {1000 * wall / n:6.2f} ms/cycle")
    print(f"  ratio engine/bare (wall): {rates['engine'][0] / rates['bare'][0]:.2f}   "
          f"(per core, CPU of this process): {rates['engine'][1] / rates['bare'][1]:.2f}   goal >= 0.5")


if __name__ == "__main__":
    asyncio.run(main())
