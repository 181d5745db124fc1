"""Benchmark: the console's case explorer with 20,000 cases (issue 15: a filtered page in under 1 s, and a CSV
export that holds every matching case).

Starts a process engine and a console of their own (a fresh namespace on the local stack), lets the engine start
one real IPS case, and stores 20,000 copies of its instance document with varied gemeente, ggz, receipt date,
state and incidents, as the engine would have written them; the engine is restarted, so that it reads them into
its in-memory case index (servicekit/zaakindex.py; the time that takes is printed too). Then, signed in to
the console as a viewer, it times filtered explorer pages (several filters, as an official combines them) and
checks that the CSV export of each filter holds exactly the cases that match (computed from the generated data).
Prints figures; exits non-zero when a CSV misses or adds a case. Not part of ``make test`` (tests/perf is not
collected); ``make bench`` runs it.

    PYTHONPATH=.:services .venv/bin/python tests/perf/bench_console.py [--cases 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import csv
import io
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient
from tests.support.console import sign_in
from tests.support.infra import discover
from tests.support.namespaces import temporary_namespace
from tests.support.processes import ServiceProcess
from tests.support.tokens import ADMIN

from servicekit.broker import EVENTS, Broker
from servicekit.envelope import new_event
from servicekit.settings import ServiceSettings

GEMEENTEN = [f"{c:04d}" for c in range(300, 320)]
GGZ = [f"{41178200 + i:08d}" for i in range(50)]
Case = dict[str, Any]
#: (name, explorer query, does a generated case match)
FILTERS: list[tuple[str, dict[str, str] | list[tuple[str, str]], Callable[[Case], bool]]] = [
    ("gemeente", {"gemeente": "0307"}, lambda c: c["gemeente"] == "0307"),
    ("gemeente + ggz + status", {"gemeente": "0311", "ggz": GGZ[7], "status": "running"},
     lambda c: c["gemeente"] == "0311" and c["ggz"] == GGZ[7] and c["status"] == "running"),
    ("ontvangen in maart + incident", {"ontvangen_van": "2026-03-01", "ontvangen_tot": "2026-03-31",
                                       "incident": "ja"},
     lambda c: c["ontvangen"].startswith("2026-03") and c["incident"]),
    ("voorwaarde bevat + bestaat", [("vnaam", "aanvraag.ontvangenOp"), ("vop", "bevat"), ("vwaarde", "2026-02-1"),
                                    ("vnaam", "gemeenteCode"), ("vop", "bestaat"), ("vwaarde", "")],
     lambda c: c["ontvangen"].startswith("2026-02-1")),
    ("geen filter", {}, lambda c: True),
]


async def _real_case(settings: ServiceSettings, engine_url: str) -> dict[str, Any]:
    broker = Broker(settings)
    await broker.connect()
    await broker.publish(new_event("ips.aanvraag.ingediend.v1", service="bench", subject="zaak-voorbeeld", data={
        "aanvraagId": "zaak-voorbeeld", "gemeenteCode": "0307", "woongemeenteCode": "0307", "trajectType": "CMD",
        "aanvraagdatum": "2026-03-02", "gewensteStartdatum": "2026-06-01", "ggzKvkNummer": GGZ[0],
        "ontvangenOp": "2026-03-02T09:00:00+01:00"}), EVENTS)
    await broker.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = httpx.get(f"{engine_url}/api/v1/zaken/zaak-voorbeeld", headers=ADMIN, timeout=10)
        if answer.status_code == 200:
            return answer.json()  # type: ignore[no-any-return]
        await asyncio.sleep(0.2)
    raise SystemExit("the engine did not start the example case")


async def _store_cases(mongo_url: str, database: str, count: int, seed: int) -> list[Case]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    instances = client[database]["instances"]
    template = await instances.find_one({"_id": "zaak-voorbeeld"})
    assert template is not None
    rng = random.Random(seed)
    generated: list[Case] = []
    batch: list[dict[str, Any]] = []
    start = datetime(2026, 1, 1, 9, tzinfo=UTC)
    for i in range(count):
        case = {"id": f"zaak-bench-{i:05d}", "gemeente": rng.choice(GEMEENTEN), "ggz": rng.choice(GGZ),
                "ontvangen": (start + timedelta(days=rng.randrange(0, 120))).date().isoformat(),
                "status": rng.choices(["running", "completed", "cancelled"], [8, 3, 1])[0],
                "incident": rng.random() < 0.05}
        case["incident"] = case["incident"] and case["status"] == "running"
        generated.append(case)
        doc = copy.deepcopy(template)
        doc.update(_id=case["id"], status=case["status"], started_at=start + timedelta(minutes=i),
                   outbox=[], has_outbox=False, incidents=[{
                       "commandId": f"cmd-{i}", "commandType": "ips.aanvraag.toetsen.v1", "elementId": "Task_toetsen",
                       "attempt": 1, "errorCode": "ONVERWACHT", "message": "register niet bereikbaar",
                       "at": start, "resolved": False}] if case["incident"] else [])
        variables = doc["variables"]
        variables["gemeenteCode"], variables["ggzKvkNummer"] = case["gemeente"], case["ggz"]
        variables["aanvraag"] = {**variables["aanvraag"], "aanvraagId": case["id"], "gemeenteCode": case["gemeente"],
                                 "ggzKvkNummer": case["ggz"], "ontvangenOp": f"{case['ontvangen']}T09:00:00+01:00"}
        batch.append(doc)
        if len(batch) == 500:
            await instances.insert_many(batch)
            batch = []
    if batch:
        await instances.insert_many(batch)
    await instances.delete_one({"_id": "zaak-voorbeeld"})
    await client.close()
    return generated


def _csv_ids(text: str) -> set[str]:
    return {row[0] for row in list(csv.reader(io.StringIO(text), delimiter=";"))[1:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    infra = discover()
    failures = 0
    with temporary_namespace(infra, "bench") as ns, tempfile.TemporaryDirectory(prefix="bench-console-") as logs:
        print(f"service logs: {logs}", flush=True)
        engine = ServiceProcess("process_engine", infra, ns, Path(logs)).start()
        console = ServiceProcess("console", infra, ns, Path(logs)).start(IPSFLOW_CONSOLE_ENGINE_URL=engine.url)
        try:
            settings = ServiceSettings(service_name="bench", amqp_url=infra.amqp_url, mongo_url=infra.mongo_url,
                                       namespace=ns)
            asyncio.run(_real_case(settings, engine.url))
            began = time.perf_counter()
            database = ServiceSettings(service_name="process_engine", namespace=ns).database_name()
            cases = asyncio.run(_store_cases(infra.mongo_url, database, args.cases, args.seed))
            print(f"stored {len(cases)} cases in {time.perf_counter() - began:.1f} s "
                  f"(one real ips_traject instance document, copied)", flush=True)
            # stored behind the engine's back: a restarted engine reads them into its case index (zaakindex.py)
            engine.stop()
            began = time.perf_counter()
            engine.start()
            while not httpx.get(f"{engine.url}/api/v1/zaakindex", headers=ADMIN, timeout=60).json()["gereed"]:
                time.sleep(2)
            print(f"engine restarted and its case index read in {time.perf_counter() - began:.1f} s", flush=True)
            client, _ = sign_in(console.url, "viewer")
            client.timeout = httpx.Timeout(600)
            for name, query, matches in FILTERS:
                expected = {c["id"] for c in cases if matches(c)}
                times = []
                for _ in range(args.rounds):
                    began = time.perf_counter()
                    page = client.get("/zaken", params=query)
                    times.append(time.perf_counter() - began)
                    if page.status_code != 200:
                        raise SystemExit(f"{name}: the console answered {page.status_code} (logs in {logs})")
                    assert f"<strong>{len(expected)}</strong> zaken gevonden" in page.text, name
                began = time.perf_counter()
                export = client.get("/zaken.csv", params=query)
                csv_seconds = time.perf_counter() - began
                got = _csv_ids(export.text)
                ok = got == expected
                failures += not ok
                verdict = "all matches" if ok else f"WRONG: {len(got - expected)} extra, {len(expected - got)} missing"
                print(f"{name:32s} {len(expected):6d} matches  page median {statistics.median(times):6.3f} s "
                      f"(min {min(times):.3f}, max {max(times):.3f})  CSV {csv_seconds:6.2f} s, {verdict}")
        finally:
            console.stop()
            engine.stop()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
