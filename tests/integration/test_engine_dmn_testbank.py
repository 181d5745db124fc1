"""The DMN test bench through the engine's API (real engine process on the real stack): the start-up deployment
keeps bpmn/ips_tarieven.testbank.json with its version; sample inputs are evaluated by the engine; a deployment
whose table fails a test case is refused and nothing is stored; with the cases brought up to date it is deployed
and they are kept with the new version; a cell the sandbox refuses is refused by the test bench too."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.support.tokens import ADMIN, FUNCTIONEEL_BEHEERDER, PROCESBEHEERDER

BPMN = Path(__file__).resolve().parents[2] / "bpmn"
TABEL = "ips_tarieven.dmn"
EPA_2023 = ">1132500<"


def test_test_bench_evaluates_and_guards_the_deployment(service):
    engine = service("process_engine").start()
    api = f"{engine.url}/api/v1"
    [v1] = [d for d in httpx.get(f"{api}/procesdefinities", headers=ADMIN, timeout=30).json()
            if d["processId"] == "ips_traject"]
    stored = httpx.get(f"{api}/dmn/testbank/{v1['hash']}/{TABEL}", headers=PROCESBEHEERDER, timeout=30).json()
    in_git = json.loads((BPMN / "ips_tarieven.testbank.json").read_text())["testgevallen"]
    assert stored == {"bestand": "ips_tarieven.testbank.json", "testgevallen": in_git}

    dmn = (BPMN / TABEL).read_text()
    sample = {"dmn": dmn, "bestand": TABEL, "beslissing": "Decision_ips_tarief",
              "invoer": {"Input_regeling": "ips-gemeenten-2023", "Input_trajecttype": "EPA"}}
    refused = httpx.post(f"{api}/dmn/evaluatie", headers=FUNCTIONEEL_BEHEERDER, timeout=30, json=sample)
    assert refused.status_code == 403
    evaluated = httpx.post(f"{api}/dmn/evaluatie", headers=PROCESBEHEERDER, timeout=30, json=sample)
    assert evaluated.status_code == 200, evaluated.text
    assert evaluated.json()["uitvoer"] == {"tarief_cents": 1132500, "looptijd_maanden": 36}

    raised = dmn.replace(EPA_2023, ">1200000<")
    run = httpx.post(f"{api}/dmn/testbank", headers=PROCESBEHEERDER, timeout=30,
                     json={"dmn": raised, "bestand": TABEL, "testgevallen": in_git}).json()
    assert not run["geslaagd"]
    assert [u["naam"] for u in run["uitkomsten"] if not u["geslaagd"]] == ["ips-gemeenten-2023, EPA"]

    files = {p.name: p.read_text() for p in BPMN.iterdir() if p.suffix in (".bpmn", ".dmn")}
    failing = httpx.post(f"{api}/procesdefinities", headers=PROCESBEHEERDER, timeout=60,
                         json={"bestanden": {**files, TABEL: raised}})
    assert failing.status_code == 400, failing.text
    assert failing.json()["type"] == "https://ipsflow.nl/problems/dmn-testbank-faalt"
    [problem] = failing.json()["invalidParams"]
    assert problem["name"] == "ips-gemeenten-2023, EPA" and problem["file"] == "ips_tarieven.testbank.json"
    assert "1132500" in problem["reason"] and "1200000" in problem["reason"]
    assert len(httpx.get(f"{api}/procesdefinities", headers=ADMIN, timeout=30).json()) == 1, "nothing stored"

    updated = [{**c, "verwacht": {**c["verwacht"], "tarief_cents": 1200000}} if c["naam"] == "ips-gemeenten-2023, EPA"
               else c for c in in_git]
    passing = httpx.post(f"{api}/procesdefinities", headers=PROCESBEHEERDER, timeout=60,
                         json={"bestanden": {**files, TABEL: raised}, "testgevallen": {TABEL: updated}})
    assert passing.status_code == 201, passing.text
    v2 = passing.json()
    assert v2["versie"] == 2
    kept = httpx.get(f"{api}/dmn/testbank/{v2['hash']}/{TABEL}", headers=PROCESBEHEERDER, timeout=30).json()
    assert kept["testgevallen"] == updated
    # Without cases of its own the next deployment is held to the newest version's: the old tariff fails now.
    back = httpx.post(f"{api}/procesdefinities", headers=PROCESBEHEERDER, timeout=60, json={"bestanden": files})
    assert back.status_code == 400 and back.json()["invalidParams"][0]["name"] == "ips-gemeenten-2023, EPA"

    unsafe = dmn.replace('<text>"CMD"</text>', '<text>__import__("os")</text>', 1)
    sandboxed = httpx.post(f"{api}/dmn/testbank", headers=PROCESBEHEERDER, timeout=30,
                           json={"dmn": unsafe, "bestand": TABEL, "testgevallen": in_git})
    assert sandboxed.status_code == 400
    assert sandboxed.json()["invalidParams"][0]["name"] == "Rule_ips_cmd_2019_CMD_type"
