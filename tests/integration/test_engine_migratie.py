"""Migration of running cases through the engine's API (real engine process, broker and FerretDB): a dry run
lists per case whether it can move and why not; the real run moves exactly those; a reversal puts back the
cases that have not moved on since and says why not for the others; moved cases finish on the new version."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from servicekit.broker import EVENTS, Broker
from servicekit.envelope import new_event
from tests.conftest import eventually
from tests.support.tokens import ADMIN, FUNCTIONEEL_BEHEERDER, PROCESBEHEERDER, bearer

BPMN_DIR = Path(__file__).resolve().parents[1] / "bpmn" / "migratie"  # not in tests/bpmn: one process id twice
ROUTES = {**{f"mig-{i}": "a" if i < 6 else "b" for i in range(10)},  # 6 can move, 4 wait in Wacht_b
          "mig-taak": "c"}  # waits in a user task: its work-list entry must follow the moves
#: The user task lies in the lane behandelaar: a behandelaar of the gemeente the case names works on it.
BEHANDELAAR = bearer("behandelaar", "gemeente", "0957", "behandelaar")


@pytest.fixture
async def broker(settings_for):
    b = Broker(settings_for("migratie-driver"))
    await b.connect()
    yield b
    await b.close()


async def test_dry_run_real_run_reversal_and_the_moved_cases_finish_on_the_new_version(service, broker, tmp_path):
    bpmn = tmp_path / "bpmn"
    bpmn.mkdir()
    shutil.copy(BPMN_DIR / "migratie_v1.bpmn", bpmn / "migratie.bpmn")
    engine = service("process_engine").start(IPSFLOW_BPMN_DIR=str(bpmn), IPSFLOW_CATALOGUE_FILE="")
    api = f"{engine.url}/api/v1"

    def get(path: str) -> Any:
        answer = httpx.get(f"{api}/{path}", headers=ADMIN, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()

    for case_id, route in ROUTES.items():
        await broker.publish(new_event("ips.test.gestart.v1", service="test", subject=case_id,
                                       data={"route": route, "gemeenteCode": "0957"}), EVENTS)

    async def all_waiting() -> bool:
        return get("zaken?status=running&limit=100")["totaal"] == len(ROUTES)
    await eventually(all_waiting, what="every case waiting")
    [v1] = get("procesdefinities")
    deployed = httpx.post(f"{api}/procesdefinities", headers=PROCESBEHEERDER, timeout=30, json={
        "bestanden": {"migratie.bpmn": (BPMN_DIR / "migratie_v2.bpmn").read_text()}})
    assert deployed.status_code == 201, deployed.text
    v2 = deployed.json()["hash"]
    request = {"doelHash": v2, "selectie": {"definitieHash": v1["hash"]}}

    refused = httpx.post(f"{api}/migraties", headers=FUNCTIONEEL_BEHEERDER, timeout=30, json=request)
    assert refused.status_code == 403 and "procesbeheerder" in refused.json()["detail"]

    dry = httpx.post(f"{api}/migraties", headers=PROCESBEHEERDER, timeout=60, json={**request, "proefrun": True})
    assert dry.status_code == 200, dry.text
    verdict = {z["zaakId"]: z for z in dry.json()["zaken"]}
    assert {c for c, z in verdict.items() if z["kan"]} == {c for c, r in ROUTES.items() if r != "b"}
    blocked = [z for z in verdict.values() if not z["kan"]]
    assert len(blocked) == 4 and all("'Wacht op bevestiging B' (Wacht_b)" in z["reden"] and
                                     "doelversie niet heeft" in z["reden"] for z in blocked), blocked
    assert {z["vanHash"] for z in verdict.values()} == {v1["hash"]}
    assert get("zaken?definitieHash=" + v2)["totaal"] == 0, "a dry run moves nothing"

    # One named case that is blocked, and one that does not exist: each with its reason.
    named = httpx.post(f"{api}/migraties", headers=PROCESBEHEERDER, timeout=30, json={
        "doelHash": v2, "selectie": {"zaakIds": ["mig-7", "bestaat-niet"]}}).json()["zaken"]
    assert [(z["zaakId"], z["kan"]) for z in named] == [("mig-7", False), ("bestaat-niet", False)]
    assert "geen zaak" in named[1]["reden"]

    real = httpx.post(f"{api}/migraties", headers=PROCESBEHEERDER, timeout=120,
                      json={**request, "proefrun": False, "toelichting": "Wacht_b vervalt"})
    assert real.status_code == 200, real.text
    run = real.json()
    outcome = {z["zaakId"]: z for z in run["zaken"]}
    assert {c for c, z in outcome.items() if z["uitkomst"] == "verplaatst"} == \
        {c for c, z in verdict.items() if z["kan"]}
    assert run["verplaatst"] == 7 and run["geblokkeerd"] == 4 and run["mislukt"] == 0
    [task] = [t for t in get("taken") if t["zaakId"] == "mig-taak"]  # the work list (read model), once
    assert task["elementId"] == "Taak_c"
    assert all(z["terugdraaibaar"] for z in run["zaken"] if z["uitkomst"] == "verplaatst")
    assert get("zaken/mig-0")["definitieHash"] == v2
    assert any(e["what"] == "gemigreerd" for e in get("zaken/mig-0")["journaal"])
    assert get("zaken/mig-9")["definitieHash"] == v1["hash"]
    listed = get("migraties")
    assert listed[0]["id"] == run["id"] and listed[0]["door"] == "procesbeheerder"
    assert listed[0]["toelichting"] == "Wacht_b vervalt"

    # mig-0 moves on (it finishes); the reversal leaves it and puts the other five back on version 1.
    await broker.publish(new_event("ips.test.bevestigd.v1", service="test", subject="mig-0", data={"ok": True}),
                         EVENTS)

    async def finished() -> bool:
        return get("zaken/mig-0")["status"] == "completed"
    await eventually(finished, what="mig-0 to finish")
    back = httpx.post(f"{api}/migraties/{run['id']}/terugdraaien", headers=PROCESBEHEERDER, timeout=120)
    assert back.status_code == 200, back.text
    reversed_ = {z["zaakId"]: z for z in back.json()["zaken"]}
    assert reversed_["mig-0"]["uitkomst"] == "niet teruggedraaid" and "verder gegaan" in reversed_["mig-0"]["reden"]
    assert {c for c, z in reversed_.items() if z["uitkomst"] == "teruggedraaid"} == \
        {f"mig-{i}" for i in range(1, 6)} | {"mig-taak"}
    assert [t["id"] for t in get("taken") if t["zaakId"] == "mig-taak"] == [task["id"]]
    assert get("zaken/mig-taak")["definitieHash"] == v1["hash"]
    assert get("zaken/mig-1")["definitieHash"] == v1["hash"]
    assert get("zaken/mig-1")["actieveElementen"] == ["Wacht_a"]
    assert [e["what"] for e in get("zaken/mig-1")["journaal"]][-2:] == ["gemigreerd", "migratie teruggedraaid"]
    assert get(f"migraties/{run['id']}")["teruggedraaid"][0]["teruggedraaid"] == 6
    again = httpx.post(f"{api}/migraties/{run['id']}/terugdraaien", headers=PROCESBEHEERDER, timeout=60).json()
    assert again["teruggedraaid"] == 0, "a reversed case is not reversed twice"

    # Move them again for good, as a background job (what a large selection is): 202 at once, the migration
    # resource shows its status and counts; every case then finishes, the moved ones through version 2's script.
    started = httpx.post(f"{api}/migraties", headers=PROCESBEHEERDER, timeout=120,
                         json={**request, "proefrun": False, "achtergrond": True})
    assert started.status_code == 202, started.text
    assert started.headers["location"] == f"/api/v1/migraties/{started.json()['id']}"
    assert started.json()["status"] == "bezig" and started.json()["totaal"] == 10, started.json()

    async def klaar() -> bool:
        return get(f"migraties/{started.json()['id']}")["status"] == "klaar"
    await eventually(klaar, what="the background migration to finish")
    real2 = get(f"migraties/{started.json()['id']}")
    assert real2["verplaatst"] == 6 and real2["geblokkeerd"] == 4 and real2["verwerkt"] == real2["totaal"] == 10
    assert len(real2["zaken"]) == 10 and get("zaken/mig-1")["definitieHash"] == v2
    [task] = [t for t in get("taken") if t["zaakId"] == "mig-taak"]
    done = httpx.post(f"{api}/taken/{task['id']}/afronden", headers=BEHANDELAAR, timeout=30, json={"gegevens": {}})
    assert done.status_code == 200, done.text
    for case_id, route in ROUTES.items():
        if case_id != "mig-0" and route != "c":
            await broker.publish(new_event("ips.test.bevestigd.v1", service="test", subject=case_id,
                                           data={"ok": True}), EVENTS)

    async def all_finished() -> bool:
        return get("zaken?status=completed&limit=100")["totaal"] == len(ROUTES)
    await eventually(all_finished, what="every case to finish")
    for case_id, route in ROUTES.items():
        steps = [h["elementId"] for h in get(f"zaken/{case_id}")["geschiedenis"]]
        assert ("Stap_v2" in steps) == (route == "a"), (case_id, steps)
    assert [t for t in get("taken") if t["zaakId"] == "mig-taak"] == []
