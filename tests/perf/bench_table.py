"""Every figure of issue 14's table in one run, for one or two checkouts side by side (old and new).

Runs, for each side in turn:
- ``bench_ips.py`` (modes max, half, history; a RabbitMQ node and FerretDB of its own): cases/s, CPU per case per
  process, writes and messages per case, p95 at half the maximum load, throughput with history / empty;
- ``bench_sepa.py``: a SEPA batch of ``--sepa`` orders built (old side: ``--old-ref``, i.e. the old checkout's
  commit; new side: this checkout);
- the servicekit ratio (each side's own ``bench_servicekit.py``, ``--servicekit-n`` submissions, one round);
- timer lateness: the side's process engine with a one-timer process (2 s), ``--timers`` cases started at once;
  lateness = when the engine fired the timer (its journal) minus when it was due;
- a work-list benchmark if this checkout has one (``tests/perf/bench_worklist.py`` or ``bench_werklijst.py``),
  and ``bench_engine.py --against <old commit>`` once (it measures both engines in one process).
Then prints the table (and writes it as Markdown with ``--markdown``). Prints figures; not a test.

    PYTHONPATH=.:services .venv/bin/python tests/perf/bench_table.py [--old /tmp/old-worktree] [--cases 100]
        [--half-cases 60] [--history 20000 --open 2000] [--history-cases 60] [--sepa 1000] [--markdown FILE]

"new" is this checkout (its services, its benchmarks). Sizes are printed with the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx
from tests.perf.bench_ips import Service, start_services_only, stop_services
from tests.support.infra import ROOT, discover
from tests.support.namespaces import temporary_namespace
from tests.support.tokens import ADMIN

from servicekit.envelope import new_event

TIMER_START = "ips.bench.timer_gestart.v1"
TIMER_BPMN = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="D_bench_timer"
    targetNamespace="https://ipsflow.example/bpmn/bench">
  <bpmn:message id="M_start" name="{TIMER_START}"/>
  <bpmn:process id="bench_timer" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing>
      <bpmn:messageEventDefinition messageRef="M_start"/></bpmn:startEvent>
    <bpmn:intermediateCatchEvent id="wacht"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>"PT2S"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="einde"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wacht"/>
    <bpmn:sequenceFlow id="f2" sourceRef="wacht" targetRef="einde"/>
  </bpmn:process>
</bpmn:definitions>
"""


def sh(cmd: list[str], cwd: Path, log: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    """Run a benchmark, its output to ``log`` as it comes and returned; a failure is reported, not raised."""
    print(f"  $ {' '.join(cmd)}   (in {cwd})", flush=True)
    full = {**os.environ, "PYTHONPATH": f"{cwd}{os.pathsep}{cwd / 'services'}", "PYTHONDONTWRITEBYTECODE": "1",
            **(env or {})}
    started = time.monotonic()
    with log.open("w") as out:
        try:
            subprocess.run(cmd, cwd=cwd, env=full, stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
                           check=False)
        except subprocess.TimeoutExpired:
            out.write(f"\n(bench_table: stopped after {timeout:.0f} s)\n")
    text = log.read_text()
    print(f"    ({time.monotonic() - started:.0f} s; output in {log})", flush=True)
    return text


def git_sha(tree: Path) -> str:
    return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=False).stdout.strip() or "?"


# --------------------------------------------------------------------------- timer lateness


async def timer_lateness(code: Path, n: int) -> dict[str, Any]:
    """The side's engine (its own process, a namespace on the shared stack) with a one-timer process: n cases
    started at once, each timer due 2 s later; lateness from the engine's journal."""
    infra = discover()
    folder = Path(tempfile.mkdtemp(prefix="bench-timer-"))
    (folder / "bench_timer.bpmn").write_text(TIMER_BPMN)
    try:
        with temporary_namespace(infra, "bench") as namespace:
            services = start_services_only(code, infra, namespace, folder, ("process_engine",),
                                           {"IPSFLOW_BPMN_DIR": str(folder), "IPSFLOW_CATALOGUE_FILE": ""})
            try:
                return await _lateness(services["process_engine"], infra.amqp_url, namespace, n)
            finally:
                stop_services(services)
    finally:
        infra.close()


async def _lateness(engine: Service, amqp_url: str, namespace: str, n: int) -> dict[str, Any]:
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(f"{namespace}ips.events")
        cases = [f"timer-{i}" for i in range(n)]
        for case in cases:
            event = new_event(TIMER_START, service="bench", subject=case, data={})
            await exchange.publish(aio_pika.Message(event.to_json(), message_id=event.id, type=event.type,
                                                    content_type="application/cloudevents+json",
                                                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                                   routing_key=TIMER_START)
    finally:
        await connection.close()
    late: list[float] = []
    async with httpx.AsyncClient(timeout=30) as client:
        deadline = time.monotonic() + 120
        pending = set(cases)
        while pending and time.monotonic() < deadline:
            await asyncio.sleep(1)
            for case in sorted(pending):
                response = await client.get(f"{engine.url}/api/v1/zaken/{case}", headers=ADMIN)
                if response.status_code != 200:
                    continue
                fired = [j for j in response.json().get("journaal", []) if j.get("what") == "timer afgegaan"]
                if fired:
                    late.append((datetime.fromisoformat(fired[0]["at"])
                                 - datetime.fromisoformat(fired[0]["due"])).total_seconds())
                    pending.discard(case)
    late.sort()
    return {"n": n, "fired": len(late), "p50_ms": 1000 * statistics.median(late) if late else None,
            "max_ms": 1000 * late[-1] if late else None}


# --------------------------------------------------------------------------- one side


def run_side(label: str, code: Path, args: argparse.Namespace, logs: Path, old_ref: str | None) -> dict[str, Any]:
    """Every benchmark of one side; ``old_ref`` set for the old side (bench_sepa takes it from git)."""
    out: dict[str, Any] = {"label": label, "code": str(code), "sha": git_sha(code)}
    py = sys.executable
    print(f"== {label}: {code} ({out['sha']})", flush=True)
    ips_json = logs / f"{label}-ips.json"
    modes = "max,half" + (",history" if args.history or args.open else "")
    sh([py, str(ROOT / "tests/perf/bench_ips.py"), "--modes", modes, "--cases", str(args.cases),
        "--half-cases", str(args.half_cases), "--history-cases", str(args.history_cases),
        "--history", str(args.history), "--open", str(args.open), "--code", str(code), "--json", str(ips_json),
        "--timeout", str(args.ips_timeout)], ROOT, logs / f"{label}-ips.log", 6 * 3600)
    if ips_json.exists():
        out["ips"] = {r["mode"]: r for r in json.loads(ips_json.read_text())}
    sepa = sh([py, str(ROOT / "tests/perf/bench_sepa.py"), "--sizes", str(args.sepa), "--only",
               "old" if old_ref else "new", *(["--old-ref", old_ref] if old_ref else [])], ROOT,
              logs / f"{label}-sepa.log", 3 * 3600)
    found = re.search(r"(?:old|new) n=(\d+): build ([\d.]+) s, book ([\d.]+) s", sepa)
    if found:
        out["sepa"] = {"n": int(found.group(1)), "build_s": float(found.group(2)), "book_s": float(found.group(3))}
    servicekit = sh([py, "tests/perf/bench_servicekit.py", "--n", str(args.servicekit_n), "--rounds", "1"], code,
                    logs / f"{label}-servicekit.log", 3600)
    found = re.search(r"ratio servicekit/raw \(mean\): ([\d.]+)", servicekit)
    if found:
        out["servicekit_ratio"] = float(found.group(1))
    try:
        out["timer"] = asyncio.run(timer_lateness(code, args.timers))
    except Exception as exc:  # a side whose engine cannot run the timer process: say so in the table
        print(f"    timer lateness not measured: {exc!r}", flush=True)
    return out


def worklist(old: Path | None, args: argparse.Namespace, logs: Path) -> dict[str, str]:
    """tests/perf/bench_worklist.py (another engineer's; both sides in one run): the work list p95 per side."""
    script = ROOT / "tests" / "perf" / "bench_worklist.py"
    if not script.exists() or not args.worklist_closed:
        return {}
    text = sh([sys.executable, str(script), *(["--before", str(old)] if old else []),
               "--open", str(args.worklist_open), "--closed", str(args.worklist_closed)], ROOT,
              logs / "worklist.log", 2 * 3600)
    # its rows: "  before  <tasks listed>  <work list p50>  <p95>  <lookup p50>  <p95>  <decide p50>  <p95>" (ms)
    rows = re.finditer(r"^\s+(before|now)\s+(\d+)\s+([\d.]+)\s+([\d.]+)", text, re.M)
    return {m.group(1): f"{float(m.group(4)):.0f} ms ({m.group(2)} listed)" for m in rows} or {"now": "see log"}


def engine_ratio(old_ref: str | None, args: argparse.Namespace, logs: Path) -> dict[str, float]:
    text = sh([sys.executable, str(ROOT / "tests/perf/bench_engine.py"), "--cases", str(args.engine_cases),
               "--rounds", str(args.engine_rounds), *(["--against", old_ref] if old_ref else ["--against", ""])],
              ROOT, logs / "engine.log", 3600)
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"^\s+(before|now)\s+ratio engine/bare \(wall\): ([\d.]+)", text, re.M)}


# --------------------------------------------------------------------------- the table


def fmt(value: Any, pattern: str = "{:.2f}") -> str:
    return "n/a" if value is None else pattern.format(value)


def table(sides: list[dict[str, Any]], engine: dict[str, float], worklist_line: dict[str, str],
          args: argparse.Namespace) -> list[str]:
    def ips(side: dict[str, Any], mode: str, key: str) -> Any:
        return side.get("ips", {}).get(mode, {}).get(key)

    head = ["figure", *[f"{s['label']} ({s['sha']})" for s in sides], "goal"]
    rows: list[list[str]] = []
    rows.append([f"cases/s, submission -> beschikking ({args.cases} cases, 20 submitters, 4 officials)",
                 *[fmt(ips(s, "max", "cases_per_s")) for s in sides], ">= 12"])
    rows.append(["p50 / p95 at that maximum load (s)",
                 *[f"{fmt(ips(s, 'max', 'p50_s'), '{:.1f}')} / {fmt(ips(s, 'max', 'p95_s'), '{:.1f}')}"
                   for s in sides], ""])
    rows.append(["CPU per case, all processes (ms)",
                 *[fmt((ips(s, "max", "cpu_ms_per_case") or {}).get("all"), "{:,.0f}") for s in sides], "<= 150"])
    processes = sorted({k for s in sides for k in (ips(s, "max", "cpu_ms_per_case") or {}) if k != "all"},
                       key=lambda k: -max((ips(s, "max", "cpu_ms_per_case") or {}).get(k, 0) for s in sides))
    for name in processes:
        rows.append([f"  {name}", *[fmt((ips(s, "max", "cpu_ms_per_case") or {}).get(name), "{:,.0f}")
                                   for s in sides], ""])
    rows.append(["database writes per case", *[fmt(ips(s, "max", "writes_per_case"), "{:.1f}") for s in sides],
                 ""])
    rows.append(["broker messages per case", *[fmt(ips(s, "max", "messages_per_case"), "{:.1f}") for s in sides],
                 ""])
    rows.append([f"p95 submission -> beschikking at half the maximum load ({args.half_cases} cases) (s)",
                 *[f"{fmt(ips(s, 'half', 'p95_s'))} (at {fmt(ips(s, 'half', 'rate'))}/s)" for s in sides],
                 "< 1.5"])
    rows.append([f"throughput with {args.history:,} completed + {args.open:,} open cases / empty "
                 f"({args.history_cases} cases)",
                 *[fmt(ips(s, "history", "ratio_to_empty")) for s in sides], ">= 0.9"])
    listed = [worklist_line.get("before" if s["label"] == "old" else "now", "n/a") for s in sides]
    rows.append([f"work list call p95 (gemeente with {args.worklist_open} open tasks, {args.worklist_closed:,} "
                 "closed cases; bench_worklist.py)", *listed, "< 100 ms"])
    rows.append([f"SEPA batch of {args.sepa:,} orders built (s)",
                 *[fmt(s.get("sepa", {}).get("build_s")) for s in sides], "< 10 s for 1,000"])
    ratios = [engine.get("before"), engine.get("now")] if len(sides) == 2 else [engine.get("now")]
    rows.append(["engine/bare SpiffWorkflow ratio, wall clock, database included",
                 *[fmt(r) for r in ratios], ">= 0.5"])
    rows.append([f"servicekit ratio (n={args.servicekit_n}, one round)",
                 *[fmt(s.get("servicekit_ratio")) for s in sides], ">= 0.7"])
    rows.append([f"timer lateness p50 / max ({args.timers} timers at once) (ms)",
                 *[f"{fmt(s.get('timer', {}).get('p50_ms'), '{:.0f}')} / "
                   f"{fmt(s.get('timer', {}).get('max_ms'), '{:.0f}')}" for s in sides], "< 1 s"])
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", help="a checkout of the old code (e.g. git worktree add /tmp/old <commit>)")
    parser.add_argument("--cases", type=int, default=100, help="cases of the maximum-load run")
    parser.add_argument("--half-cases", type=int, default=60)
    parser.add_argument("--history-cases", type=int, default=60)
    parser.add_argument("--history", type=int, default=20000)
    parser.add_argument("--open", type=int, default=2000)
    parser.add_argument("--ips-timeout", type=float, default=1200, help="seconds a measured IPS run may take")
    parser.add_argument("--sepa", type=int, default=1000)
    parser.add_argument("--servicekit-n", type=int, default=500)
    parser.add_argument("--engine-cases", type=int, default=5)
    parser.add_argument("--engine-rounds", type=int, default=2)
    parser.add_argument("--timers", type=int, default=20)
    parser.add_argument("--worklist-open", type=int, default=200)
    parser.add_argument("--worklist-closed", type=int, default=20000, help="0: no work-list benchmark")
    parser.add_argument("--markdown", help="also write the table (and its conditions) to this file")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-table-"))
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    sides = []
    if args.old:
        old = Path(args.old).resolve()
        sides.append(run_side("old", old, args, logs, git_sha(old)))
    sides.append(run_side("new", ROOT, args, logs, None))
    engine = engine_ratio(sides[0]["sha"] if args.old else None, args, logs)
    worklist_line = worklist(Path(args.old).resolve() if args.old else None, args, logs)
    load_after = os.getloadavg()
    lines = table(sides, engine, worklist_line, args)
    conditions = (f"{started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load average {load_before[0]:.1f} at the "
                  f"start and {load_after[0]:.1f} at the end (1 min), {datetime.now(UTC) - started} in all; "
                  f"logs in {logs}")
    print("\n" + "\n".join(lines) + "\n\n" + conditions, flush=True)
    (logs / "sides.json").write_text(json.dumps({"sides": sides, "engine": engine}, indent=1, default=str))
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n\n" + conditions + "\n")


if __name__ == "__main__":
    main()
