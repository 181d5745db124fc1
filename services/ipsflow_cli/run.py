"""``ipsflow run``: every service as its own process against the local stack, plus demo data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import httpx

# (package, port): the processes that make up ipsflow; each serves /ready and its API docs.
SERVICES: list[tuple[str, int]] = [("intake", 8001), ("notifications", 8004), ("process_engine", 8005)]

DEMO_APPLICATIONS = [
    {"clientReferentie": "DEMO-0001", "gemeenteCode": "0957", "trajectType": "CMD", "ggzKvkNummer": "41178211"},
    {"clientReferentie": "DEMO-0002", "gemeenteCode": "0988", "trajectType": "EPA", "ggzKvkNummer": "41178211"},
    {"clientReferentie": "DEMO-0003", "gemeenteCode": "0363", "trajectType": "CMD", "ggzKvkNummer": "30276543"},
]


def _wait_ready(port: int, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def load_demo_data() -> int:
    start = (date.today() + timedelta(days=30)).isoformat()
    loaded = 0
    for i, body in enumerate(DEMO_APPLICATIONS):
        response = httpx.post("http://127.0.0.1:8001/api/v1/aanvragen", json={**body, "gewensteStartdatum": start},
                              headers={"Idempotency-Key": f"demo-{i}"}, timeout=10)
        response.raise_for_status()
        loaded += 1
    return loaded


def run_system(root: Path, demo: bool = True) -> int:
    log_dir = root / ".local" / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(root / "services")}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for package, _port in SERVICES:
            log_file = (log_dir / f"{package}.log").open("ab")
            processes.append(subprocess.Popen([sys.executable, "-m", package], env=env,  # noqa: S603
                                              stdout=log_file, stderr=subprocess.STDOUT))
            print(f"[run] {package} started (log: {log_dir / f'{package}.log'})", flush=True)
        for package, port in SERVICES:
            if not _wait_ready(port):
                print(f"[run] ERROR: {package} did not become ready on port {port}; see its log", flush=True)
                return 1
        if demo:
            print(f"[run] demo data: {load_demo_data()} aanvragen ingediend", flush=True)
        print("[run] ipsflow runs:", flush=True)
        for package, port in SERVICES:
            print(f"[run]   {package:<15} API docs: http://127.0.0.1:{port}/api/v1/docs", flush=True)
        print("[run]   RabbitMQ management: http://127.0.0.1:15672 (guest/guest); `ipsflow queues` shows the queues",
              flush=True)
        print("[run] Ctrl-C stops everything.", flush=True)
        while all(p.poll() is None for p in processes):
            time.sleep(1)
        print("[run] a service stopped; stopping the others", flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in processes:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
