"""``ipsflow bpmn``: deploy, list and compare process definitions through the engine's API."""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

bpmn_app = typer.Typer(help="Procesdefinities (BPMN/DMN) uitrollen, tonen en vergelijken.", no_args_is_help=True)
console = Console()


def _engine() -> str:
    return os.environ.get("IPSFLOW_ENGINE_URL", "http://127.0.0.1:8005")


def _user(*roles: str) -> dict[str, str]:
    """IPSFLOW_TOKEN, else a development token for functioneel beheer with the ``roles`` the action needs
    (reading needs none; only a service in development, on the development key, accepts it)."""
    token = os.environ.get("IPSFLOW_TOKEN")
    if not token:
        from servicekit.auth import mint_token

        token = mint_token(os.environ.get("USER", "beheerder"), "beheer", "ipsflow", list(roles))
    return {"Authorization": f"Bearer {token}"}


def _get(path: str) -> httpx.Response:
    try:
        return httpx.get(f"{_engine()}/api/v1{path}", headers=_user(), timeout=30)
    except httpx.HTTPError as exc:
        console.print(f"[red]process engine onbereikbaar op {_engine()}[/red]: {exc}")
        raise typer.Exit(1) from None


def _all_versions() -> list[dict[str, Any]]:
    """Every deployed version: the engine's list a page at a time (the next behind Link rel="next")."""
    response = _get("/procesdefinities?pageSize=500")
    versions: list[dict[str, Any]] = []
    while True:
        versions.extend(response.json())
        following = response.links.get("next", {}).get("url")
        if not following:
            return versions
        try:
            response = httpx.get(following, headers=_user(), timeout=30)
        except httpx.HTTPError as exc:
            console.print(f"[red]process engine onbereikbaar op {_engine()}[/red]: {exc}")
            raise typer.Exit(1) from None


@bpmn_app.command("deploy")
def deploy(paths: Annotated[list[Path], typer.Argument(help=".bpmn/.dmn-bestanden of een map.")]) -> None:
    """Validate and deploy a new version; problems are shown per BPMN element."""
    files: dict[str, str] = {}
    testbank: dict[str, Any] = {}  # a table's test cases next to it (<tabel>.testbank.json): the engine runs them
    for path in paths:
        candidates = sorted(path.iterdir()) if path.is_dir() else [path]
        files.update({p.name: p.read_text() for p in candidates if p.suffix in (".bpmn", ".dmn")})
        testbank.update({p.name.removesuffix(".testbank.json") + ".dmn": json.loads(p.read_text())["testgevallen"]
                         for p in candidates if p.name.endswith(".testbank.json")})
    if not files:
        console.print("[red]geen .bpmn- of .dmn-bestanden gevonden[/red]")
        raise typer.Exit(2)
    try:
        response = httpx.post(f"{_engine()}/api/v1/procesdefinities",
                              json={"bestanden": files, **({"testgevallen": testbank} if testbank else {})},
                              headers=_user("procesbeheerder"), timeout=60)
    except httpx.HTTPError as exc:
        console.print(f"[red]process engine onbereikbaar op {_engine()}[/red]: {exc}")
        raise typer.Exit(1) from None
    body = response.json()
    if response.status_code >= 400:
        console.print(f"[red]{body.get('title')}[/red]: {body.get('detail', '')}")
        for problem in body.get("invalidParams", []):
            console.print(f"  {problem.get('file', '')} [bold]{problem['name']}[/bold]: {problem['reason']}")
        raise typer.Exit(1)
    state = "nieuwe versie" if response.status_code == 201 else "al uitgerold"
    console.print(f"[green]{body['processId']} versie {body['versie']}[/green] ({state}) hash {body['hash'][:12]}")


@bpmn_app.command("list")
def list_() -> None:
    """Every deployed version per process."""
    table = Table(title="procesdefinities")
    for col in ("proces", "versie", "hash", "uitgerold", "door"):
        table.add_column(col)
    for d in _all_versions():
        table.add_row(d["processId"], str(d["versie"]), d["hash"][:12], str(d["uitgerold"])[:19], d["uitgerolddoor"])
    console.print(table)


@bpmn_app.command("diff")
def diff(old: str, new: str) -> None:
    """Unified diff of two deployed versions (hash prefixes are enough)."""
    index = {d["hash"]: d for d in _all_versions()}

    def resolve(prefix: str) -> dict[str, str]:
        matches = [h for h in index if h.startswith(prefix)]
        if len(matches) != 1:
            console.print(f"[red]{prefix}: {len(matches)} definities passen[/red]")
            raise typer.Exit(2)
        return _get(f"/procesdefinities/{matches[0]}").json()["bestanden"]  # type: ignore[no-any-return]

    a, b = resolve(old), resolve(new)
    changed = False
    for name in sorted(set(a) | set(b)):
        lines = difflib.unified_diff(a.get(name, "").splitlines(), b.get(name, "").splitlines(),
                                     f"{old}/{name}", f"{new}/{name}", lineterm="")
        for line in lines:
            changed = True
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else None
            console.print(line, style=style, markup=False, highlight=False)
    if not changed:
        console.print("geen verschillen")


zaak_app = typer.Typer(help="Zaken (procesinstanties): bekijken en incidenten opnieuw proberen.", no_args_is_help=True)


@zaak_app.command("show")
def zaak_show(case_id: str) -> None:
    """State, active BPMN elements, open tasks and incidents of one case."""
    response = _get(f"/zaken/{case_id}")
    if response.status_code != 200:
        console.print(f"[red]{response.json().get('detail', response.text)}[/red]")
        raise typer.Exit(1)
    case = response.json()
    console.print(f"[bold]{case['id']}[/bold] {case['status']} ({case['processId']}, {case['definitieHash'][:12]})")
    console.print(f"  actief: {', '.join(case['actieveElementen']) or '-'}")
    for task in case["taken"]:
        console.print(f"  taak {task['id']} {task['elementId']} lane={task['lane']} geclaimd={task['geclaimdDoor']}")
    for incident in case["incidenten"]:
        state = "opgelost" if incident.get("resolved") else "[red]open[/red]"
        console.print(f"  incident {incident['commandId']} {incident['elementId']} {incident['errorCode']}: "
                      f"{incident['message']} ({state})")


@zaak_app.command("retry")
def zaak_retry(case_id: str, command_id: str) -> None:
    """Re-issue the failed command of an open incident (attempt + 1)."""
    try:
        response = httpx.post(f"{_engine()}/api/v1/zaken/{case_id}/incidenten/{command_id}/opnieuw",
                              headers=_user("functioneel-beheerder"), timeout=60)
    except httpx.HTTPError as exc:
        console.print(f"[red]process engine onbereikbaar op {_engine()}[/red]: {exc}")
        raise typer.Exit(1) from None
    if response.status_code != 200:
        console.print(f"[red]{response.json().get('title')}[/red]: {response.json().get('detail', '')}")
        raise typer.Exit(1)
    console.print(f"[green]opnieuw uitgezet[/green]; actief: {', '.join(response.json()['actieveElementen'])}")
