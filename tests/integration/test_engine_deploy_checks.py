"""Every deploy runs the studio's server checks (process_engine/studio.py, Uitrolcontrole): the engine's API and
so ``ipsflow bpmn deploy`` refuse, as the studio does, a service task whose command is not in the catalogue and a
user task in a lane that names no role, with a 400 naming the element and the rule; the start-up deploy of
``bpmn/`` passes the same checks. Regression tests: before, only the studio's own deploy checked these."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.studio import uitrollen, versies

ROOT = Path(__file__).resolve().parents[2]
BPMN_DIR = ROOT / "bpmn"


def _bestanden(bpmn: str) -> dict[str, str]:
    files = {p.name: p.read_text() for p in BPMN_DIR.iterdir() if p.suffix in (".bpmn", ".dmn")}
    return {**files, "ips_traject.bpmn": bpmn}


def _start(service) -> tuple[str, dict]:  # type: ignore[no-untyped-def]
    # the real diagram and the real catalogue (bpmn/README.md): the engine's defaults
    engine = service("process_engine").start()
    [v1] = versies(engine.url)  # the start-up deploy passed the checks
    assert v1["processId"] == "ips_traject" and v1["uitgerolddoor"] == "startup"
    return engine.url, v1


def test_an_api_deploy_refuses_a_service_task_with_an_uncatalogued_command(service):
    url, v1 = _start(service)
    xml = (BPMN_DIR / "ips_traject.bpmn").read_text()
    uncatalogued = xml.replace('id="ips.aanvraag.toetsen.v1"', 'id="ips.iets.anders.v1"')
    assert uncatalogued != xml

    refused = uitrollen(url, _bestanden(uncatalogued), "via de API")
    assert refused.status_code == 400, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    named = {(p["name"], p["code"], p["file"]) for p in refused.json()["invalidParams"]}
    assert named == {("ServiceTask_toetsen", "catalogus", "ips_traject.bpmn")}, named
    assert "ips.iets.anders.v1" in refused.json()["invalidParams"][0]["reason"]
    assert [v["hash"] for v in versies(url)] == [v1["hash"]], "nothing was deployed"


def test_a_cli_deploy_refuses_a_user_task_in_a_lane_without_a_role(service, tmp_path):
    url, v1 = _start(service)
    xml = (BPMN_DIR / "ips_traject.bpmn").read_text()
    folder = tmp_path / "zonder_rol"
    folder.mkdir()
    without_role = xml.replace('name="Behandelaar"', 'name="Iedereen"')
    assert without_role != xml
    for name, text in _bestanden(without_role).items():
        (folder / name).write_text(text)
    cli = subprocess.run([sys.executable, "-m", "ipsflow_cli.main", "bpmn", "deploy", str(folder)],
                         capture_output=True, text=True, timeout=120, check=False,
                         env={"IPSFLOW_ENGINE_URL": url, "COLUMNS": "200",
                              "PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert "Procesdefinitie geweigerd" in cli.stdout and "UserTask_beoordelen" in cli.stdout, cli.stdout
    assert "Iedereen" in cli.stdout, cli.stdout
    assert [v["hash"] for v in versies(url)] == [v1["hash"]], "nothing was deployed"

    # the same diagram with the lane's role back deploys: the checks refuse only what breaks a rule
    fine = xml.replace('name="Aanvraag beoordelen en besluiten"', 'name="Aanvraag beoordelen (v2)"')
    assert fine != xml
    deployed = uitrollen(url, _bestanden(fine), "via de CLI hersteld")
    assert deployed.status_code == 201, deployed.text
    assert deployed.json()["versie"] == 2
