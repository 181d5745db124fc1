"""``ipsflow``: the admin command line. Stack control, queue monitoring, the parking lots (dlq)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from pymongo.errors import PyMongoError
from rich.console import Console
from rich.table import Table

from ipsflow_cli.bpmn import bpmn_app, zaak_app
from ipsflow_cli.klok import klok_app
from ipsflow_cli.logboek import logboek as logboek_command
from ipsflow_cli.namespaces import Endpoints, describe_age
from ipsflow_cli.run import run_system
from servicekit.queue_stats import queue_depths

app = typer.Typer(help="ipsflow: beheer van de IPS-subsidieketen (stack, wachtrijen, dlq).", no_args_is_help=True)
stack_app = typer.Typer(help="De lokale stack zonder Docker: RabbitMQ en FerretDB.", no_args_is_help=True)
dlq_app = typer.Typer(help="Parkeerplaatsen (<queue>.dlq): bekijken, terugzetten, legen.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(dlq_app, name="dlq")
app.add_typer(bpmn_app, name="bpmn")
app.add_typer(zaak_app, name="zaak")
app.add_typer(klok_app, name="klok")
app.command("logboek")(logboek_command)
console = Console()

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "deploy" / "local" / "stack.sh"


def _management_url() -> str:
    port = os.environ.get("IPSFLOW_RABBITMQ_MANAGEMENT_PORT", "15672")  # as deploy/local/stack.sh
    return os.environ.get("IPSFLOW_RABBITMQ_MANAGEMENT_URL", f"http://guest:guest@127.0.0.1:{port}")


def _amqp_url() -> str:
    port = os.environ.get("IPSFLOW_RABBITMQ_PORT", "5672")
    return os.environ.get("IPSFLOW_AMQP_URL", f"amqp://guest:guest@127.0.0.1:{port}/")


def _mongo_url() -> str:
    listen = os.environ.get("IPSFLOW_FERRETDB_LISTEN", "127.0.0.1:27017")
    return os.environ.get("IPSFLOW_MONGO_URL", f"mongodb://{listen}/")


def _vhost() -> str:
    return urllib.parse.quote(urllib.parse.urlparse(_amqp_url()).path.lstrip("/") or "/", safe="")


def _stack(*args: str) -> None:
    result = subprocess.run(["bash", str(STACK), *args], check=False)  # noqa: S603,S607
    raise typer.Exit(result.returncode)


@stack_app.command("up")
def stack_up() -> None:
    """Install what is missing, start RabbitMQ and FerretDB, wait until both answer."""
    _stack("up")


@stack_app.command("down")
def stack_down() -> None:
    """Stop FerretDB and RabbitMQ."""
    _stack("down")


@stack_app.command("status")
def stack_status() -> None:
    """Tell whether RabbitMQ (AMQP handshake) and FerretDB answer, and list namespaces test runs left behind."""
    code = subprocess.run(["bash", str(STACK), "status"], check=False).returncode  # noqa: S603,S607
    if code == 0:
        _show_namespaces()
    raise typer.Exit(code)


@stack_app.command("reset")
def stack_reset(yes: Annotated[bool, typer.Option("--yes", help="Niet om bevestiging vragen.")] = False) -> None:
    """Wipe the local broker and database state (.local/rabbitmq, .local/ferretdb) and start both fresh."""
    if not yes and not typer.confirm("RabbitMQ en FerretDB stoppen en alle lokale wachtrijen, berichten en documenten "
                                     "verwijderen (.local/rabbitmq, .local/ferretdb)?"):
        raise typer.Exit(1)
    _stack("reset", "--yes")


def _sweep_rule(older_than_hours: float) -> tuple[float, bool]:
    return older_than_hours * 3600, True  # (max age in seconds, names without a time count at once)


@stack_app.command("sweep")
def stack_sweep(older_than_hours: Annotated[float, typer.Option(
        "--older-than-hours", min=0, help="Alleen namespaces ouder dan dit (uit de naam).")] = 24.0) -> None:
    """Remove namespaces of test, benchmark and acceptance runs that were left behind: older than 24 hours (or
    --older-than-hours), or of an older name format without a time, and in either case without consumers."""
    from ipsflow_cli.namespaces import sweep

    max_age, legacy_now = _sweep_rule(older_than_hours)
    now = time.time()
    local = Path(os.environ.get("IPSFLOW_LOCAL_DIR", ROOT / ".local"))
    removed = sweep(_endpoints(), max_age, seen_file=local / "namespaces-seen.json", legacy_now=legacy_now, now=now)
    for ns in removed:
        console.print(f"verwijderd: {ns.key} ({len(ns.queues)} wachtrijen, {len(ns.exchanges)} exchanges, "
                      f"{len(ns.databases)} databases, leeftijd {describe_age(ns.age_seconds(now))})",
                      highlight=False, soft_wrap=True)
    console.print(f"{len(removed)} achtergebleven namespace(s) opgeruimd")


def _endpoints() -> Endpoints:
    return Endpoints(_mongo_url(), _management_url(), _amqp_url())


def _show_namespaces() -> None:
    from ipsflow_cli.namespaces import leftovers, scan

    try:
        found = scan(_endpoints())
    except (httpx.HTTPError, OSError, PyMongoError) as exc:
        console.print(f"[yellow]namespaces niet op te vragen:[/yellow] {type(exc).__name__}")
        return
    if not found:
        console.print("Geen namespaces van test- of benchmarkruns op de broker of in de database.")
        return
    now = time.time()
    max_age, legacy_now = _sweep_rule(24.0)
    swept = {ns.key for ns in leftovers(found, now, max_age, legacy_now=legacy_now)}
    console.print(f"Namespaces van test- en benchmarkruns: {len(found)}")
    for ns in found:
        verdict = ("achtergebleven" if ns.key in swept else "in gebruik (consumers)" if ns.consumers
                   else "nog geen dag oud")
        console.print(f"  {ns.key:<22} leeftijd {describe_age(ns.age_seconds(now)):<10} {len(ns.queues):>4} wachtrijen "
                      f"{len(ns.exchanges):>3} exchanges {len(ns.databases):>3} databases {ns.consumers:>3} consumers"
                      f"  {verdict}", highlight=False, soft_wrap=True)
    if swept:
        console.print(f"{len(swept)} achtergebleven; `ipsflow stack sweep` ruimt ze op.")


def fetch_queues(namespace: str = "") -> list[dict[str, Any]]:
    """The queues of one namespace from the management API, with the depth of each one's parking lot."""
    with httpx.Client(timeout=10) as client:
        response = client.get(f"{_management_url()}/api/queues/{_vhost()}")
        response.raise_for_status()
        raw = response.json()
    rows = []
    for depth in queue_depths(raw, namespace):
        q, stats = depth.queue, depth.queue.get("message_stats") or {}
        rows.append({
            "queue": q["name"],
            "ready": q.get("messages_ready", 0),
            "unacked": q.get("messages_unacknowledged", 0),
            "consumers": q.get("consumers", 0),
            "publish_rate": round((stats.get("publish_details") or {}).get("rate", 0.0), 1),
            "deliver_rate": round((stats.get("deliver_get_details") or {}).get("rate", 0.0), 1),
            "retrying": depth.retrying,
            "dlq": depth.dlq.get("messages", 0) if depth.dlq else None,
        })
    return sorted(rows, key=lambda r: r["queue"])


@app.command()
def queues(namespace: Annotated[str, typer.Option(help="Alleen wachtrijen met dit voorvoegsel.")] = "",
           as_json: Annotated[bool, typer.Option("--json", help="Als JSON in plaats van een tabel.")] = False) -> None:
    """Per wachtrij: klaar, onbevestigd, consumers, publiceer-/afleversnelheid en dlq-diepte."""
    try:
        rows = fetch_queues(namespace)
    except httpx.HTTPError as exc:
        console.print(f"[red]RabbitMQ management API onbereikbaar[/red] ({_management_url().split('@')[-1]}): {exc}")
        raise typer.Exit(1) from None
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title="ipsflow wachtrijen")
    for col, justify in (("queue", "left"), ("ready", "right"), ("unacked", "right"), ("consumers", "right"),
                         ("publish/s", "right"), ("deliver/s", "right"), ("retrying", "right"), ("dlq", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        dlq = "-" if r["dlq"] is None else (f"[bold red]{r['dlq']}[/bold red]" if r["dlq"] else "0")
        table.add_row(r["queue"], str(r["ready"]), str(r["unacked"]), str(r["consumers"]),
                      f"{r['publish_rate']:.1f}", f"{r['deliver_rate']:.1f}", str(r["retrying"]), dlq)
    console.print(table)


@dlq_app.command("show")
def dlq_show(queue: str, limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
             as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show parked messages of QUEUE (id, type, case, reason); they stay parked."""
    from ipsflow_cli.dlq import peek

    rows = asyncio.run(peek(_amqp_url(), queue, limit))
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title=f"{queue}.dlq ({len(rows)} getoond)")
    for col in ("message id", "type", "zaak", "pogingen", "reden"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["id"]), str(r["type"]), str(r["subject"] or "—"), str(r["attempts"]), str(r["reason"]))
    console.print(table)


@dlq_app.command("replay")
def dlq_replay(queue: str, limit: Annotated[int, typer.Option(min=1)] = 1_000_000,
               namespace: Annotated[str, typer.Option(envvar="IPSFLOW_NAMESPACE",
                                                      help="Voorvoegsel van exchanges en wachtrijen.")] = "") -> None:
    """Put parked messages of QUEUE back on QUEUE (only on it), with a fresh attempt count."""
    from ipsflow_cli.dlq import replay

    moved = asyncio.run(replay(_amqp_url(), queue, namespace, limit,
                               progress=lambda n: console.print(f"teruggezet: {n}")))
    console.print(f"[green]{moved} bericht(en) teruggezet op {queue}[/green]")


@dlq_app.command("purge")
def dlq_purge(queue: str,
              yes: Annotated[bool, typer.Option("--yes", help="Niet om bevestiging vragen.")] = False) -> None:
    """Delete every parked message of QUEUE. Asks first unless --yes."""
    from ipsflow_cli.dlq import purge

    if not yes and not typer.confirm(f"Alle berichten in {queue}.dlq verwijderen?"):
        raise typer.Exit(1)
    removed = asyncio.run(purge(_amqp_url(), queue))
    console.print(f"{removed} bericht(en) verwijderd uit {queue}.dlq")


@app.command()
def token(subject: Annotated[str, typer.Option("--sub", help="Gebruikers-id.")],
          org_type: Annotated[str, typer.Option(help="ggz, gemeente, uwv of beheer.")],
          org: Annotated[str, typer.Option(help="KvK/AGB, CBS-gemeentecode, UWV of ipsflow.")],
          role: Annotated[list[str] | None, typer.Option("--role", help="Rol; mag vaker.")] = None,
          minutes: Annotated[int, typer.Option("--minuten", min=1, max=24 * 60,
                                               help="Geldigheid; hoogstens IPSFLOW_JWT_MAX_LIFETIME_SECONDS.")] = 60,
          name: Annotated[str, typer.Option("--naam", help="Naam en functie onder een besluit.")] = "",
          mandaat: Annotated[list[str] | None, typer.Option(
              "--mandaat", help="Soort besluit in het ondermandaat (toekenning, afwijzing, ...); mag vaker.")] = None,
          ) -> None:
    """Mint a development bearer token (RS256, key in .local/dev-keys); never for production."""
    from servicekit.auth import AuthSettings, mint_token

    # The services refuse a token that lives longer than their maximum (default one hour): say so here, not
    # with a 401 later.
    maximum = AuthSettings().max_lifetime_seconds
    if minutes * 60 > maximum:
        console.print(f"[red]Een token mag hoogstens {maximum // 60} minuten geldig zijn "
                      "(IPSFLOW_JWT_MAX_LIFETIME_SECONDS).[/red]")
        raise typer.Exit(2)
    try:
        sys.stdout.write(mint_token(subject, org_type, org, role or [], minutes * 60,
                                    name=name, mandates=mandaat or []) + "\n")
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@app.command()
def run(demo: Annotated[bool, typer.Option(help="Laad demogegevens zodra alles draait.")] = True) -> None:
    """Start every service against the local stack (Ctrl-C stops them)."""
    raise typer.Exit(run_system(ROOT, demo=demo))


if __name__ == "__main__":
    app()
