"""``ipsflow logboek``: the Logboek dataverwerkingen of one service (who read or changed which application)."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

console = Console()

#: The local address of each service that keeps a logboek (``make run``); ``--url`` for any other.
SERVICES = {"intake": "http://127.0.0.1:8001", "grants": "http://127.0.0.1:8002",
            "notifications": "http://127.0.0.1:8004", "process_engine": "http://127.0.0.1:8005"}


def _token(given: str | None) -> str:
    """``--token``, else IPSFLOW_TOKEN, else a development token for functioneel beheer (dev-key servers only)."""
    token = given or os.environ.get("IPSFLOW_TOKEN")
    if token:
        return token
    from servicekit.auth import mint_token

    return mint_token(os.environ.get("USER", "beheerder"), "beheer", "ipsflow", ["functioneel-beheerder"], 3600)


def logboek(
        service: Annotated[str, typer.Option(help="intake, grants, notifications of process_engine.")] = "intake",
        url: Annotated[str | None, typer.Option(help="Adres van de service (in plaats van --service).")] = None,
        subject: Annotated[str | None, typer.Option(help="Alleen verwerkingen door deze gebruiker (sub).")] = None,
        organisatie: Annotated[str | None, typer.Option(help="Alleen door deze organisatie (KvK, CBS-code, ...).")]
        = None,
        resource: Annotated[str | None, typer.Option("--resource", help="Alleen deze aanvraag/zaak/brief (id).")]
        = None,
        actie: Annotated[str | None, typer.Option(help="read, list, create, update, upload of download.")] = None,
        van: Annotated[str | None, typer.Option(help="Vanaf dit tijdstip (ISO 8601 met tijdzone).")] = None,
        tot: Annotated[str | None, typer.Option(help="Tot dit tijdstip (ISO 8601 met tijdzone).")] = None,
        limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
        offset: Annotated[int, typer.Option(min=0, max=100_000)] = 0,
        token: Annotated[str | None, typer.Option(help="Bearer-token (anders IPSFLOW_TOKEN of een dev-token).")]
        = None,
        as_json: Annotated[bool, typer.Option("--json", help="Als JSON in plaats van een tabel.")] = False,
) -> None:
    """Wie las of wijzigde welke aanvraag, wanneer, met welk resultaat (nieuwste eerst; functioneel beheer)."""
    base = url or SERVICES.get(service)
    if base is None:
        console.print(f"[red]onbekende service {service}[/red]; kies uit {', '.join(SERVICES)} of geef --url")
        raise typer.Exit(2)
    params: dict[str, Any] = {k: v for k, v in (("subject", subject), ("organisatie", organisatie),
                                                 ("resourceId", resource), ("actie", actie), ("van", van),
                                                 ("tot", tot)) if v}
    params.update(limit=limit, offset=offset)
    try:
        response = httpx.get(f"{base.rstrip('/')}/api/v1/logboek", params=params,
                             headers={"Authorization": f"Bearer {_token(token)}"}, timeout=30)
    except httpx.HTTPError as exc:
        console.print(f"[red]{base} onbereikbaar[/red]: {exc}")
        raise typer.Exit(1) from None
    if response.status_code != 200:
        body = response.json() if response.headers.get("content-type", "").endswith("json") else {}
        console.print(f"[red]{response.status_code} {body.get('title', '')}[/red]: {body.get('detail', '')}")
        for problem in body.get("invalidParams", []):
            console.print(f"  [bold]{problem['name']}[/bold]: {problem['reason']}")
        raise typer.Exit(1)
    items = response.json()["items"]
    if as_json:
        sys.stdout.write(json.dumps(items, indent=2) + "\n")
        return
    table = Table(title=f"logboek dataverwerkingen {base} ({len(items)} getoond, vanaf {offset})")
    for col in ("tijdstip", "wie", "organisatie", "actie", "gegevens", "status", "trace id"):
        table.add_column(col)
    for e in items:
        what = f"{e['resourceType']} {e.get('resourceId') or ''}".strip()
        if e.get("onderdeel"):
            what += f" / {e['onderdeel']}"
        if e.get("aantal") is not None and not e.get("resourceId"):
            what += f" ({e['aantal']} stuks)"
        table.add_row(str(e["tijdstip"])[:23], e["subject"], f"{e['orgType']} {e['organisatie']}", e["actie"], what,
                      str(e["status"]), e["traceId"])
    console.print(table)
