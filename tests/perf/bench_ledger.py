"""Benchmark: what one budget-ledger booking costs as a budget period fills with cases (issue 14, history).

Every case of a budget period has an entry in its ledger: the reservation (amount, status) and the financial
totals. The allocator reserves, the grant commits, payments book the totals, and each step reads the entry.
This seeds a ledger with ``--entries`` completed cases (written as the old layout stored them, the ledger's own
``reserveringen`` and ``financieel`` maps; a side that has ``deel_in`` moves them into its buckets first, and
that move is timed too, and then books one case's totals in each bucket, as a ledger in use has a last booking for
every bucket) and then, ``--cases`` times, books a new case as the services do: reserve, read,
commit, read, book its totals. It prints the median and the largest time of each step per side.

"before" runs grants' repository of ``--against <commit>`` (git archive) in a process of its own, "now" this
checkout's in another, round by round in turn, on the same database server, each in a database of its own.
Prints figures; not a test.

    PYTHONPATH=.:services .venv/bin/python tests/perf/bench_ledger.py [--entries 20000] [--cases 5]
        [--rounds 2] [--against 86675b6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STEPS = ("reserve", "read", "commit", "read again", "book totals")
LEDGER = "bench-regeling:2026"


async def _seed(db: Any, entries: int) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    reserveringen = {f"h-{i:06d}": {"bedragCents": 500_000, "status": "vastgelegd", "at": at, "vastgelegdOp": at}
                     for i in range(entries)}
    financieel = {f"h-{i:06d}": {"betaald_cents": 500_000, "teruggevorderd_cents": 0, "vastgesteld_cents": 500_000,
                                 "versie": 1, "commands": [f"cmd-h-{i:06d}"]} for i in range(entries)}
    ceiling = 10**13
    await db["budgetten"].insert_one({
        "_id": LEDGER, "regeling": "bench-regeling", "periode": "2026", "plafond_cents": ceiling,
        "beschikbaar_cents": ceiling - 500_000 * entries, "gereserveerd_cents": 0,
        "vastgelegd_cents": 500_000 * entries, "betaald_cents": 500_000 * entries, "teruggevorderd_cents": 0,
        "vastgesteld_cents": 500_000 * entries, "reserveringen": reserveringen, "financieel": financieel,
        "revision": 1})


async def _worker(args: argparse.Namespace) -> None:
    from pymongo import AsyncMongoClient

    from grants.repository import GrantsRepository

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(args.mongo, maxPoolSize=8, tz_aware=True)
    db = client[args.database]
    repo = GrantsRepository(db)
    at = datetime.now(UTC)
    try:
        for line in sys.stdin:
            request = json.loads(line)
            if request["op"] == "seed":
                await client.drop_database(args.database)
                started = time.perf_counter()
                await _seed(db, request["entries"])
                seeded = time.perf_counter() - started
                moved = filled = None
                if hasattr(repo, "deel_in"):
                    started = time.perf_counter()
                    await repo.deel_in()
                    moved = time.perf_counter() - started
                    # a ledger in use has a last booking for every bucket (the 256 buckets of session 10): book
                    # one case's totals per bucket; with a document per aanvraag (session 11) one booking will do
                    import grants.repository as grants_repository

                    emmer = getattr(grants_repository, "emmer", lambda aid: "")
                    per_bucket = {emmer(f"h-{i:06d}"): f"h-{i:06d}" for i in range(request["entries"])}
                    started = time.perf_counter()
                    for aid in per_bucket.values():
                        await repo.register_financial(LEDGER, aid, f"fill-{aid}", {"betaald_cents": 400_000})
                    filled = [len(per_bucket), time.perf_counter() - started]
                answer: Any = {"seed_s": seeded, "move_s": moved, "filled": filled}
            elif request["op"] == "cases":
                taken: dict[str, list[float]] = {step: [] for step in STEPS}

                async def timed(step: str, call: Any, taken: dict[str, list[float]] = taken) -> Any:
                    started = time.perf_counter()
                    result = await call
                    taken[step].append(time.perf_counter() - started)
                    return result

                for k in range(request["n"]):
                    aid = f"n-{request['round']}-{k}"

                    assert await timed("reserve", repo.reserve_budget(LEDGER, aid, 500_000, at))
                    assert (await timed("read", repo.reservering(LEDGER, aid)))["status"] == "gereserveerd"
                    await timed("commit", repo.commit_budget(LEDGER, aid, 500_000, at))
                    assert (await timed("read again", repo.reservering(LEDGER, aid)))["status"] == "vastgelegd"
                    await timed("book totals", repo.register_financial(
                        LEDGER, aid, f"cmd-{aid}", {"betaald_cents": 500_000, "teruggevorderd_cents": None,
                                                    "vastgesteld_cents": None}))
                answer = taken
            else:
                break
            print(json.dumps(answer), flush=True)
    finally:
        await client.drop_database(args.database)
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=20_000, help="completed cases already in the ledger")
    parser.add_argument("--cases", type=int, default=5, help="new cases booked per round and side")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--against", default="86675b6", help="a commit, or a checkout's directory ('' for none)")
    parser.add_argument("--mongo", help="default: the local stack's")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(_worker(args))
        return
    from tests.perf.bench_engine import Side, services_of

    from ipsflow_cli.namespaces import new_namespace
    from ipsflow_cli.run import local_stack_urls

    args.mongo = args.mongo or local_stack_urls()["IPSFLOW_MONGO_URL"]
    prefix = f"{new_namespace('bench')}ledger".replace(".", "_")
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        if args.against and Path(args.against, "services").is_dir():
            old: Path | None = Path(args.against, "services").resolve()
        else:
            old = services_of(args.against, Path(tmp) / "before") if args.against else None
        trees = {"before": old, "now": ROOT / "services"} if old is not None else {"now": ROOT / "services"}
        sides = {name: Side(name, services, [__file__, "--worker", "--mongo", args.mongo, "--database",
                                             f"{prefix}_{name}"], Path(tmp)) for name, services in trees.items()}
        try:
            taken: dict[str, dict[str, list[float]]] = {name: {s: [] for s in STEPS} for name in sides}
            for name, side in sides.items():
                seeded = side.ask(op="seed", entries=args.entries)
                moved = "" if seeded["move_s"] is None else (
                    f", moved into buckets in {seeded['move_s']:.1f} s, then a booking in each of its"
                    f" {seeded['filled'][0]} buckets in {seeded['filled'][1]:.1f} s")
                print(f"  {name:<6} ledger with {args.entries} cases written in {seeded['seed_s']:.1f} s{moved}",
                      flush=True)
            for r in range(args.rounds):  # in turn, to spread the machine's noise over both sides
                for name, side in sides.items():
                    for step, times in side.ask(op="cases", n=args.cases, round=r).items():
                        taken[name][step].extend(times)
                    print(f"  round {r + 1} {name} done", flush=True)
            print(f"a ledger with {args.entries} completed cases; {args.cases} new cases x {args.rounds} rounds per"
                  f" side, in turn{f'; before = {args.against}' if old is not None else ''}; load average"
                  f" {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            print(f"  {'step':<12}" + "".join(f"{name + ' median':>16}{name + ' max':>13}" for name in sides)
                  + "   (ms)")
            for step in STEPS:
                print(f"  {step:<12}" + "".join(
                    f"{1000 * statistics.median(taken[n][step]):16.1f}{1000 * max(taken[n][step]):13.1f}"
                    for n in sides))
            for name in sides:
                total = sum(sum(t) for t in taken[name].values()) / (args.cases * args.rounds)
                print(f"  {name:<6} one case's five steps: {1000 * total:.1f} ms")
        finally:
            for side in sides.values():
                side.close()


if __name__ == "__main__":
    main()
