"""Benchmark: building and booking a SEPA pain.001 batch of N payment orders, old code against new, in one run.

Each measurement runs in a process of its own against the real MongoDB-wire server (the local FerretDB), in a
fresh database that is dropped afterwards:

1. seeds N orders through payments' own handler (``opdrachten_aanmaken``, one engine command per case, spread
   over the ggz-instellingen of ``payments/data/rekeningen.json``), ``--history`` paid orders before them;
2. times ``batch_aanmaken`` (claim the orders, build and validate the pain.001 against the XSD) with
   ``maxOpdrachten`` = N, then ``batch_verzonden`` and ``batch_geboekt`` (orders paid, ledger booked);
3. checks the outcome: N orders in the batch, each paid once, the ledger's paid total equal to the control sum.

"old" is the payments + servicekit code of ``--old-ref`` (default: the commit before the bulk claims), taken
with ``git archive`` into a temporary directory; "new" is the working tree. The sizes run alternately (old,
new, old, new ...), so both see the same machine.

    .venv/bin/python tests/perf/bench_sepa.py [--sizes 60,1000] [--rounds 1] [--old-ref 5d0ed70] [--history 0]
                                              [--only old|new]

The old code needs about 25 minutes for 1,000 orders on the 2-core machine (seeding included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OLD_REF = "5d0ed70"  # the last commit with one status-guarded update per order
AANMAKEN = "ips.betaling.opdrachten_aanmaken.v1"
BUDGET = {"niveau": "budget", "rijkPercentage": 50, "gemeentenPercentage": 50}


async def _seed(handlers: Any, new_event: Any, kvks: list[str], prefix: str, n: int) -> None:
    for i in range(n):
        case = f"{prefix}{i}"
        data = {"aanvraag_id": case, "beschikking_id": f"B-{case}", "ggz_kvk_nummer": kvks[i % len(kvks)],
                "gemeente_code": "0957", "regeling": "ips-gemeenten-2023", "bedrag_cents": 100_000 + i,
                "financiering": BUDGET, "betaalschema": [{"moment": "toekenning", "percentage": 100}],
                "moment": "toekenning"}
        await handlers.opdrachten_aanmaken(new_event(AANMAKEN, service="process_engine", subject=case, data=data))


async def worker(code: Path, mongo_url: str, n: int, history: int) -> dict[str, Any]:
    """One measurement with the payments code under ``code`` (a directory holding ``services``)."""
    sys.path.insert(0, str(code / "services"))
    from pymongo import AsyncMongoClient

    from payments.bootstrap import REKENINGEN_FILE, load_rekeningen
    from payments.handlers import PaymentsHandlers
    from payments.repository import PaymentsRepository
    from payments.sepa import schema_errors
    from servicekit.envelope import new_event

    assert Path(sys.modules["payments.handlers"].__file__ or "").is_relative_to(code), "wrong code loaded"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, maxPoolSize=8, tz_aware=True)
    name = f"bench_sepa_{uuid.uuid4().hex[:10]}"
    database = client[name]
    try:
        repo = PaymentsRepository(database)
        rekeningen = load_rekeningen(REKENINGEN_FILE)
        handlers = PaymentsHandlers(repo, rekeningen, wake=lambda *a, **k: None)
        kvks = sorted(k for k in rekeningen.ggz if rekeningen.voor(k) is not None)
        if history:
            await _seed(handlers, new_event, kvks, "H", history)
            oud = await handlers.batch_aanmaken("geschiedenis", history, None, datetime.now(UTC))
            await handlers.batch_verzonden(oud["_id"], datetime.now(UTC))
            await handlers.batch_geboekt(oud["_id"], datetime.now(UTC))
        t0 = time.perf_counter()
        await _seed(handlers, new_event, kvks, "C", n)
        seeded = time.perf_counter() - t0
        t0 = time.perf_counter()
        batch = await handlers.batch_aanmaken("bench", n, None, datetime.now(UTC))
        built = time.perf_counter() - t0
        await handlers.batch_verzonden(batch["_id"], datetime.now(UTC))
        t0 = time.perf_counter()
        await handlers.batch_geboekt(batch["_id"], datetime.now(UTC))
        booked = time.perf_counter() - t0
        # the outcome: every order in the batch once, paid once, the ledger's paid total equals the control sum
        assert batch["aantal"] == n and len(set(batch["opdrachten"])) == n, batch["aantal"]
        assert schema_errors(batch["pain001"].encode()) == []
        orders = await database["opdrachten"].find({"batch_id": batch["_id"]}).to_list(None)
        assert len(orders) == n and {o["status"] for o in orders} == {"betaald"}
        betaald = sum(int(g["totaal"]["betaald_cents"]) for g in await database["grootboek"].find({}).to_list(None))
        assert betaald == batch["control_sum_cents"] + (oud["control_sum_cents"] if history else 0), betaald
        return {"n": n, "seed_s": seeded, "build_s": built, "book_s": booked}
    finally:
        await client.drop_database(name)
        await client.close()


def old_tree(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "services"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def run(code: Path, mongo_url: str, n: int, history: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--worker", str(code), "--mongo", mongo_url, "--n", str(n),
                          "--history", str(history)], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="60,1000")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--old-ref", default=OLD_REF)
    parser.add_argument("--history", type=int, default=0, help="paid orders in the database before the batch")
    parser.add_argument("--only", choices=("old", "new"), help="one side only (the old code's 1,000 take ~25 min)")
    parser.add_argument("--mongo", default=os.environ.get("IPSFLOW_MONGO_URL", "mongodb://"
                        + os.environ.get("IPSFLOW_FERRETDB_LISTEN", "127.0.0.1:27017")))
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(worker(args.worker.resolve(), args.mongo, args.n, args.history))))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_sepa_old_") as tmp:
        codes = {"old": old_tree(args.old_ref, Path(tmp)), "new": ROOT}
        if args.only:
            codes = {args.only: codes[args.only]}
        for _ in range(args.rounds):
            for n in sizes:
                for variant, code in codes.items():
                    r = run(code, args.mongo, n, args.history)
                    results.setdefault((variant, n), []).append(r)
                    print(f"  {variant} n={n}: build {r['build_s']:.2f} s, book {r['book_s']:.2f} s "
                          f"(seeding {r['seed_s']:.1f} s)", flush=True)
    print(f"\nSEPA batch, old = {args.old_ref}, new = working tree, history = {args.history} paid orders "
          f"(best of {args.rounds})")
    print(f"{'orders':>7} | {'build old':>10} | {'build new':>10} | {'ms/order new':>12} | {'book old':>9} | "
          f"{'book new':>9}")
    nothing = {"build_s": float("nan"), "book_s": float("nan")}
    for n in sizes:
        old = min(results.get(("old", n), [nothing]), key=lambda r: r["build_s"])
        new = min(results.get(("new", n), [nothing]), key=lambda r: r["build_s"])
        print(f"{n:>7} | {old['build_s']:>8.2f} s | {new['build_s']:>8.2f} s | {1000 * new['build_s'] / n:>12.1f} | "
              f"{old['book_s']:>7.2f} s | {new['book_s']:>7.2f} s")


if __name__ == "__main__":
    main()
