"""``ipsflow run``: every service as its own process against the local stack, plus demo data."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import httpx

from servicekit.settings import FERRETDB_POOL_SIZE

# (package, port): the processes that make up ipsflow; each serves /ready and its API docs.
SERVICES: list[tuple[str, int]] = [("intake", 8001), ("grants", 8002), ("payments", 8003),
                                   ("notifications", 8004), ("process_engine", 8005), ("console", 8006)]
DEMO_GGZ = "41178211"
_COMPLETE = {"ondertekening": {"kandidaat": True, "ggzInstelling": True},
             "modelgetrouwheid": {"certificaatnummer": "PHR-DEMO-1", "geldigTot": "2028-06-30"},
             "doelgroep": {"uitkering": "bijstand", "wilBetaaldWerk": True, "andereReintegratie": False}}
# (what it shows, application): a complete CMD and EPA case, one without a certificate (hersteltermijn) and one
# addressed to the wrong gemeente (doorzending). Test BSNs that pass the elfproef; never real people.
DEMO_APPLICATIONS: list[tuple[str, dict[str, object]]] = [
    ("volledig, CMD, Roermond", {"clientReferentie": "DEMO-0001", "bsn": "111222333", "gemeenteCode": "0957",
                                 "woongemeenteCode": "0957", "trajectType": "CMD", **_COMPLETE}),
    ("volledig, EPA, Weert", {"clientReferentie": "DEMO-0002", "bsn": "123456782", "gemeenteCode": "0988",
                              "woongemeenteCode": "0988", "trajectType": "EPA", **_COMPLETE}),
    ("onvolledig (certificaat ontbreekt)", {"clientReferentie": "DEMO-0003", "bsn": "111222333",
                                            "gemeenteCode": "0957", "woongemeenteCode": "0957",
                                            "trajectType": "CMD", **{**_COMPLETE, "modelgetrouwheid": None}}),
    ("verkeerde gemeente (woont in Weert)", {"clientReferentie": "DEMO-0004", "bsn": "123456782",
                                             "gemeenteCode": "0957", "woongemeenteCode": "0988",
                                             "trajectType": "CMD", **_COMPLETE}),
]


def _answers_ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_all_ready(processes: list[subprocess.Popen[bytes]], log_dir: Path, timeout: float) -> bool:
    """Waits until every service answers /ready, saying every 15 s which ones it still waits for. On a busy
    machine six Python processes importing at once take a while (a minute and more at a load average of 20);
    a service whose process ends is reported at once with the end of its log."""
    started = time.monotonic()
    waiting = dict(zip(SERVICES, processes, strict=True))
    next_report = started + 15
    while waiting:
        for (package, port), process in list(waiting.items()):
            if process.poll() is not None:
                tail = (log_dir / f"{package}.log").read_text(errors="replace").splitlines()[-5:]
                print(f"[run] ERROR: {package} stopped at start-up (exit {process.returncode}); the end of its log:",
                      *(f"[run]   {line[:300]}" for line in tail), sep="\n", flush=True)
                return False
            if _answers_ready(port):
                del waiting[(package, port)]
        now = time.monotonic()
        if waiting and now - started > timeout:
            names = ", ".join(package for package, _ in waiting)
            print(f"[run] ERROR: not ready after {timeout:.0f} s: {names}; see their logs in {log_dir} (a slower"
                  " machine may need IPSFLOW_RUN_READY_SECONDS)", flush=True)
            return False
        if waiting and now >= next_report:
            print(f"[run] waiting for {', '.join(package for package, _ in waiting)} ({now - started:.0f} s)",
                  flush=True)
            next_report = now + 15
        time.sleep(0.5)
    print(f"[run] all services ready after {time.monotonic() - started:.0f} s", flush=True)
    return True


def load_demo_data() -> int:
    """Submit the demo applications as the demo ggz (idempotent: a second run finds the same ones)."""
    from servicekit.auth import mint_token, public_key

    token = mint_token("demo-ggz", "ggz", DEMO_GGZ, ["aanvrager"])
    # Another installation (other development keys) against the same database is another demo: intake keys its
    # request hashes, so the same body from there would look like a different request under the same key.
    installation = hashlib.sha256(public_key()).hexdigest()[:8]
    start = (date.today() + timedelta(days=30)).isoformat()
    loaded = 0
    for i, (what, body) in enumerate(DEMO_APPLICATIONS):
        full = {**body, "ggzKvkNummer": DEMO_GGZ, "gewensteStartdatum": start}
        # The key follows the content: a second run the same day finds the same applications, a run on another
        # day (another start date) submits fresh ones instead of colliding with yesterday's key.
        content = hashlib.sha256(json.dumps(full, sort_keys=True).encode()).hexdigest()[:16]
        key = f"demo-{installation}-{i}-{content}"
        response = httpx.post("http://127.0.0.1:8001/api/v1/aanvragen", json=full,
                              headers={"Idempotency-Key": key, "Authorization": f"Bearer {token}"}, timeout=10)
        if response.status_code >= 400:
            print(f"[run] demo aanvraag '{what}' refused: {response.status_code} {response.text[:300]}", flush=True)
            continue
        print(f"[run]   aanvraag {response.json()['id']}: {what}", flush=True)
        loaded += 1
    return loaded


def local_stack_addresses() -> tuple[str, str, str]:
    """The AMQP URL, MongoDB URL and RabbitMQ management host:port where deploy/local/stack.sh put the stack: the
    variables that move the stack move them (tests/support/infra.py reads them here too)."""
    amqp_port = os.environ.get("IPSFLOW_RABBITMQ_PORT", "5672")
    ferretdb = os.environ.get("IPSFLOW_FERRETDB_LISTEN", "127.0.0.1:27017")
    management_port = os.environ.get("IPSFLOW_RABBITMQ_MANAGEMENT_PORT", "15672")
    return f"amqp://guest:guest@127.0.0.1:{amqp_port}/", f"mongodb://{ferretdb}/", f"127.0.0.1:{management_port}"


def local_stack_urls() -> dict[str, str]:
    """The services' variables for the local stack (its variables move it; the URLs win), and the small Mongo pool
    FerretDB needs (the code's default is the driver's, meant for MongoDB)."""
    amqp, mongo, management = local_stack_addresses()
    return {"IPSFLOW_AMQP_URL": amqp,
            # the console's queue depths (the same variable `ipsflow queues` reads)
            "IPSFLOW_RABBITMQ_MANAGEMENT_URL": f"http://{management}",
            "IPSFLOW_MONGO_URL": mongo, "IPSFLOW_MONGO_POOL_SIZE": str(FERRETDB_POOL_SIZE)}


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_system(root: Path, demo: bool = True) -> int:
    log_dir = root / ".local" / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    # A developer's machine unless said otherwise: the services trust the development key pair that `ipsflow
    # token` mints with (any other environment refuses to start without IPSFLOW_JWT_PUBLIC_KEY_FILE or _JWKS_URL).
    env = {"IPSFLOW_ENVIRONMENT": "development", **local_stack_urls(), **os.environ,
           "PYTHONPATH": str(root / "services")}
    processes: list[subprocess.Popen[bytes]] = []
    # Ctrl-C and a supervisor's SIGTERM both stop everything cleanly. A shell that starts us in the background
    # leaves SIGINT ignored, and Python then installs no handler of its own: the services (uvicorn handles SIGINT
    # itself) stopped while we went on and reported "a service stopped" with exit 1.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        for package, _port in SERVICES:
            log_file = (log_dir / f"{package}.log").open("ab")
            processes.append(subprocess.Popen([sys.executable, "-m", package], env=env,  # noqa: S603
                                              stdout=log_file, stderr=subprocess.STDOUT))
            print(f"[run] {package} started (log: {log_dir / f'{package}.log'})", flush=True)
        if not _wait_all_ready(processes, log_dir, float(os.environ.get("IPSFLOW_RUN_READY_SECONDS", "300"))):
            return 1
        if demo:
            print(f"[run] demo data: {load_demo_data()} aanvragen ingediend", flush=True)
        print("[run] ipsflow runs:", flush=True)
        for package, port in SERVICES:
            print(f"[run]   {package:<15} API docs: http://127.0.0.1:{port}/api/v1/docs", flush=True)
        management_port = os.environ.get("IPSFLOW_RABBITMQ_MANAGEMENT_PORT", "15672")
        print(f"[run]   RabbitMQ management: http://127.0.0.1:{management_port} (guest/guest); `ipsflow queues` shows"
              " the queues",
              flush=True)
        print("[run]   console (beheer) http://127.0.0.1:8006/ ; development sign-in (viewer, functioneel-beheerder, "
              "procesbeheerder): http://127.0.0.1:8006/aanmelden", flush=True)
        print("[run] Tokens for the APIs (development keys): ipsflow token --sub j.jansen --org-type gemeente "
              "--org 0957 --role behandelaar --naam 'J. Jansen' --mandaat toekenning --mandaat afwijzing", flush=True)
        print("[run] Ctrl-C stops everything.", flush=True)
        while all(p.poll() is None for p in processes):
            time.sleep(1)
        print("[run] a service stopped; stopping the others", flush=True)
        return 1
    except KeyboardInterrupt:
        print("[run] stopping", flush=True)
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
