"""The studio's guards on the real stack: only a procesbeheerder (org_type beheer) opens it, checks, compares and
deploys, in the console and again in the engine with the user's own token; every POST needs the session's CSRF
token; a deploy without a toelichting or with a problem is refused and nothing is stored; the console's 64 KiB
form limit does not cut off a diagram."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.support.console import csrf_of, sign_in
from tests.support.studio import versies
from tests.support.tokens import ADMIN, FUNCTIONEEL_BEHEERDER, PROCESBEHEERDER, bearer

ROOT = Path(__file__).resolve().parents[2]
GEMEENTE = bearer("behandelaar-1", "gemeente", "0957", "behandelaar")


def test_only_a_procesbeheerder_uses_the_studio_with_csrf_and_the_servers_checks(service: Any) -> None:
    engine = service("process_engine").start()
    console = service("console").start(IPSFLOW_CONSOLE_ENGINE_URL=engine.url)
    bpmn = (ROOT / "bpmn" / "ips_traject.bpmn").read_text()
    assert len(bpmn.encode()) > 64 * 1024  # larger than the console's other forms may be

    # The engine: its studio endpoints need beheer with the role procesbeheerder.
    dmn = (ROOT / "bpmn" / "ips_tarieven.dmn").read_text()
    body = {"bestanden": {"ips_traject.bpmn": bpmn, "ips_tarieven.dmn": dmn}}
    for caller in (FUNCTIONEEL_BEHEERDER, GEMEENTE):
        for method, path, json in (("GET", "catalogus", None), ("POST", "controle", body),
                                   ("POST", "vergelijking", body)):
            answer = httpx.request(method, f"{engine.url}/api/v1/studio/{path}", headers=caller, json=json,
                                   timeout=30)
            assert answer.status_code == 403, (path, answer.text)
    assert httpx.post(f"{engine.url}/api/v1/studio/controle", json=body, timeout=30).status_code == 401
    checked = httpx.post(f"{engine.url}/api/v1/studio/controle", headers=PROCESBEHEERDER, json=body, timeout=30)
    assert checked.status_code == 200 and checked.json() == {"problemen": []}

    # The console: a functioneel-beheerder does not get in; no Studio link either.
    other, _ = sign_in(console.url, "functioneel-beheerder")
    assert 'href="/studio"' not in other.get("/").text
    assert other.get("/studio").status_code == 403
    assert other.get("/studio/ips_traject").status_code == 403
    page = other.get("/")
    refused = other.post("/studio/ips_traject/uitrollen", data={"csrf": csrf_of(page.text), "bpmn": bpmn,
                                                                 "toelichting": "mag niet"})
    assert refused.status_code == 403

    owner, _ = sign_in(console.url, "procesbeheerder")
    studio = owner.get("/studio/ips_traject")
    assert studio.status_code == 200 and 'id="modeler"' in studio.text
    csrf = csrf_of(owner.get("/").text)
    # No CSRF token, or another one: refused before anything is checked or deployed.
    for token in ("", "nep"):
        answer = owner.post("/studio/ips_traject/uitrollen", data={"csrf": token, "bpmn": bpmn, "toelichting": "x"})
        assert answer.status_code == 403
    # Without a toelichting: refused.
    changed = bpmn.replace('name="Zaakgegevens vastleggen"', 'name="Zaakgegevens vastleggen (gewijzigd)"')
    answer = owner.post("/studio/ips_traject/uitrollen", data={"csrf": csrf, "bpmn": changed, "toelichting": " "})
    assert answer.status_code == 400
    # A command that is not in the catalogue: the server's check refuses it, naming the element.
    unknown = bpmn.replace('id="ips.aanvraag.toetsen.v1"', 'id="ips.aanvraag.iets_anders.v1"')
    answer = owner.post("/studio/ips_traject/uitrollen", data={"csrf": csrf, "bpmn": unknown, "toelichting": "x"})
    assert answer.status_code == 409
    assert {"element": "ServiceTask_toetsen", "regel": "catalogus"}.items() <= answer.json()["problemen"][0].items()
    assert len(versies(engine.url)) == 1

    # The comparison, then a deploy that goes through: version 2 with who and why, the DMN file along unchanged.
    compared = owner.post("/studio/ips_traject/vergelijking", data={"csrf": csrf, "bpmn": changed})
    assert compared.status_code == 200
    assert compared.json()["gewijzigd"] == [{"element": "ScriptTask_zaakgegevens", "wat": ["inhoud"]}]
    deployed = owner.post("/studio/ips_traject/uitrollen", data={"csrf": csrf, "bpmn": changed,
                                                                  "toelichting": "Naam verduidelijkt"})
    assert deployed.status_code == 201, deployed.text
    assert deployed.json()["versie"] == 2 and deployed.json()["nieuw"] is True
    v2 = next(d for d in versies(engine.url) if d["versie"] == 2)
    assert v2["uitgerolddoor"] == "dev-procesbeheerder" and v2["toelichting"] == "Naam verduidelijkt"
    detail = httpx.get(f"{engine.url}/api/v1/procesdefinities/{v2['hash']}", headers=ADMIN, timeout=10).json()
    assert sorted(detail["bestanden"]) == ["ips_tarieven.dmn", "ips_traject.bpmn"]
    assert detail["bestanden"]["ips_tarieven.dmn"] == dmn
    download = owner.get(f"/studio/ips_traject/versies/{v2['hash']}/ips_traject.bpmn")
    assert download.status_code == 200 and download.text == changed
    assert 'filename="ips_traject.bpmn"' in download.headers["content-disposition"]
    audit = owner.get("/audit").text
    assert "uitrollen" in audit and "Naam verduidelijkt" in audit and "geweigerd: controle" in audit
