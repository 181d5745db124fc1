"""``ipsflow klok``: the rehearsal clock (oefenklok) of a test or training environment.

``set`` asks the process engine to move the clock (it broadcasts the setting to every service) and then asks every
service for its time until all agree, so a rehearsal never starts with one service still on the old time.
"""

from __future__ import annotations

import os
import time
from datetime import date, datetime
from datetime import time as day_time
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from servicekit.kalender import AMSTERDAM

klok_app = typer.Typer(help="De oefenklok van een test- of opleidingsomgeving: tonen, zetten, terugzetten.",
                       no_args_is_help=True)
console = Console()
#: (service, environment variable with its base URL, default URL): every service that follows the clock.
SERVICES = [("intake", "IPSFLOW_INTAKE_URL", "http://127.0.0.1:8001"),
            ("grants", "IPSFLOW_GRANTS_URL", "http://127.0.0.1:8002"),
            ("payments", "IPSFLOW_PAYMENTS_URL", "http://127.0.0.1:8003"),
            ("notifications", "IPSFLOW_NOTIFICATIONS_URL", "http://127.0.0.1:8004"),
            ("process_engine", "IPSFLOW_ENGINE_URL", "http://127.0.0.1:8005")]
#: Services whose offset differs less than this from the engine's agree (a setting is exact; this is slack).
TOLERANCE_SECONDS = 1.0


def _urls() -> dict[str, str]:
    return {name: os.environ.get(var, default).rstrip("/") for name, var, default in SERVICES}


def _user() -> dict[str, str]:
    """IPSFLOW_TOKEN, else a development token for functioneel beheer (only a dev-key server accepts it)."""
    token = os.environ.get("IPSFLOW_TOKEN")
    if not token:
        from servicekit.auth import mint_token

        token = mint_token(os.environ.get("USER", "beheerder"), "beheer", "ipsflow", ["functioneel-beheerder"])
    return {"Authorization": f"Bearer {token}"}


def parse_moment(text: str) -> datetime:
    """``2026-03-03`` (09:00 Europe/Amsterdam, the start of a working day), ``2026-03-03T14:30`` (Europe/Amsterdam)
    or an ISO time with its own offset."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), day_time(9, 0), tzinfo=AMSTERDAM)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("geef een datum (2026-03-03) of tijdstip (2026-03-03T09:00+01:00)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=AMSTERDAM)


def read_clocks(client: httpx.Client, urls: dict[str, str]) -> dict[str, dict[str, Any] | str]:
    """Each service's ``GET /api/v1/beheer/klok``; a string says why a service did not answer."""
    found: dict[str, dict[str, Any] | str] = {}
    for name, url in urls.items():
        try:
            response = client.get(f"{url}/api/v1/beheer/klok", headers=_user())
        except httpx.HTTPError as exc:
            found[name] = f"onbereikbaar op {url} ({type(exc).__name__})"
            continue
        found[name] = response.json() if response.status_code == 200 else f"HTTP {response.status_code}"
    return found


def lagging(clocks: dict[str, dict[str, Any] | str], offset: float) -> list[str]:
    """The services that do not (yet) run on ``offset`` seconds from real time."""
    return [name for name, c in clocks.items()
            if not isinstance(c, dict) or not c.get("verstelbaar")
            or abs(float(c["verschuivingSeconden"]) - offset) > TOLERANCE_SECONDS]


def _show(clocks: dict[str, dict[str, Any] | str]) -> None:
    table = Table(title="oefenklok")
    for col in ("service", "nu", "verschuiving (dagen)", "verstelbaar"):
        table.add_column(col)
    for name, c in clocks.items():
        if isinstance(c, str):
            table.add_row(name, f"[red]{c}[/red]", "", "")
            continue
        nu = datetime.fromisoformat(str(c["nu"])).astimezone(AMSTERDAM).strftime("%Y-%m-%d %H:%M:%S %Z")
        table.add_row(name, nu, f"{float(c['verschuivingSeconden']) / 86400:.2f}", "ja" if c["verstelbaar"] else "nee")
    console.print(table)


def _move(method: str, body: dict[str, str] | None, wait: float) -> None:
    urls = _urls()
    with httpx.Client(timeout=30) as client:
        try:
            response = client.request(method, f"{urls['process_engine']}/api/v1/beheer/klok", json=body,
                                      headers=_user())
        except httpx.HTTPError as exc:
            console.print(f"[red]process engine onbereikbaar op {urls['process_engine']}[/red]: {exc}")
            raise typer.Exit(1) from None
        if response.status_code != 200:
            problem = response.json() if response.headers.get("content-type", "").endswith("json") else {}
            console.print(f"[red]klok niet gezet ({response.status_code})[/red]: {problem.get('title', '')} "
                          f"{problem.get('detail', '')}")
            raise typer.Exit(1)
        offset = float(response.json()["verschuivingSeconden"])
        deadline = time.monotonic() + wait
        clocks = read_clocks(client, urls)
        while lagging(clocks, offset) and time.monotonic() < deadline:
            time.sleep(0.3)
            clocks = read_clocks(client, urls)
    _show(clocks)
    behind = lagging(clocks, offset)
    if behind:
        console.print(f"[red]nog niet op de nieuwe tijd na {wait:.0f} s[/red]: {', '.join(behind)} "
                      "(staat IPSFLOW_ADJUSTABLE_CLOCK=true en draait de service?)")
        raise typer.Exit(1)
    console.print("[green]alle services werken met dezelfde tijd[/green]")


WaitOption = Annotated[float, typer.Option("--wacht", help="Seconden wachten tot elke service volgt.")]


@klok_app.command("set")
def set_(moment: Annotated[str, typer.Argument(help="2026-03-03, 2026-03-03T14:30 of 2026-03-03T14:30+01:00.")],
         wait: WaitOption = 30) -> None:
    """Zet de klok van alle services; de tijd loopt daarna gewoon door (test- en opleidingsomgevingen)."""
    _move("PUT", {"nu": parse_moment(moment).isoformat()}, wait)


@klok_app.command("reset")
def reset(wait: WaitOption = 30) -> None:
    """Alle services terug op de echte tijd."""
    _move("DELETE", None, wait)


@klok_app.command("show")
def show() -> None:
    """De tijd van elke service."""
    with httpx.Client(timeout=10) as client:
        clocks = read_clocks(client, _urls())
    _show(clocks)
