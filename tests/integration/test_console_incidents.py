"""The console's incidents (services/console/incidenten.py) against a real engine, broker and database: open
incidents grouped by signature; a whole group retried after the service was fixed, each case reported resolved;
variables set before a retry (allow-listed, no personal data) and the case reported failed again with its new
error; a viewer may look but not act (403, no buttons)."""

from __future__ import annotations

import asyncio
import html
import json
import re
from typing import Any

import httpx
import pytest

from servicekit.broker import EVENTS, Broker
from servicekit.envelope import new_event
from tests.conftest import eventually
from tests.support.console import bpmn_dir_with_test_process, csrf_of, sign_in
from tests.support.fake_services import FakeServices, succeed
from tests.support.tokens import ADMIN, bearer

GEMEENTE = bearer("behandelaar-1", "gemeente", "0957", "behandelaar")
GROUP_LINK = re.compile(r'href="/incidenten/([0-9a-f]{16})">([^<]*)</a>')


@pytest.fixture
async def broker(settings_for):
    b = Broker(settings_for("test-driver"))
    await b.connect()
    yield b
    await b.close()


def _incidents(engine_url: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{engine_url}/api/v1/incidenten", headers=ADMIN, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _outcomes(html: str) -> dict[str, tuple[str, str]]:
    """Per case on an outcome page: (kind, text)."""
    rows = re.findall(r'data-soort="(\w+)">\s*<td><a href="[^"]+">([^<]+)</a></td><td>([^<]*)</td>', html)
    return {case: (kind, text) for kind, case, text in rows}


async def test_a_group_is_retried_whole_after_the_fix_and_each_case_reported(service, broker, tmp_path):
    engine = service("process_engine").start(IPSFLOW_BPMN_DIR=bpmn_dir_with_test_process(tmp_path),
                                             IPSFLOW_CATALOGUE_FILE="")
    console = service("console").start(IPSFLOW_CONSOLE_ENGINE_URL=engine.url)
    broken = {"register": True}

    def reply(event: Any) -> tuple[str, dict[str, Any]] | None:
        if event.type == "ips.test.registreer.v1" and event.subject == "zaak-anders":
            return "ips.opdracht.mislukt.v1", {"code": "ONVERWACHT", "message": "ander probleem"}
        if event.type == "ips.test.registreer.v1" and broken["register"]:
            return "ips.opdracht.mislukt.v1", {"code": "ONVERWACHT", "message": "register niet bereikbaar"}
        return succeed(event)

    fake = FakeServices(broker, reply=reply)
    await fake.start()
    cases = [f"zaak-groep-{i}" for i in range(3)]
    for case_id in [*cases, "zaak-anders"]:
        await broker.publish(new_event("ips.test.gestart.v1", service="test", subject=case_id,
                                       data={"aanvraag_id": case_id, "bedrag": 120_000}), EVENTS)

    async def four_incidents() -> bool:
        return len(await asyncio.to_thread(_incidents, engine.url)) == 4
    await eventually(four_incidents, timeout=60, what="four incidents")
    # the engine's list of incidents is functioneel beheer's only
    assert httpx.get(f"{engine.url}/api/v1/incidenten", timeout=10).status_code == 401
    definition = _incidents(engine.url)[0]["definitieHash"]
    stats_url = f"{engine.url}/api/v1/procesdefinities/{definition}/statistiek"
    assert httpx.get(stats_url, headers=GEMEENTE, timeout=10).status_code == 403
    stats = httpx.get(stats_url, headers=ADMIN, timeout=10).json()
    assert stats["zaken"] == 4 and stats["elementen"]["Task_registreer"] == {"actief": 4, "incident": 4,
                                                                            "afgerond": 0}

    viewer, _ = sign_in(console.url, "viewer")
    page = viewer.get("/incidenten").text
    groups = dict(GROUP_LINK.findall(page))
    assert sorted(groups.values()) == ["Task_registreer", "Task_registreer"]
    assert "register niet bereikbaar" in page and "ander probleem" in page
    [row] = [r for r in page.split("</tr>") if "register niet bereikbaar" in r]
    [sig] = [s for s in groups if s in row]
    assert '<td class="getal">3</td>' in row and "ips.test.registreer.v1" in row
    group_page = viewer.get(f"/incidenten/{sig}").text
    assert all(c in group_page for c in cases) and "zaak-anders" not in group_page
    assert "opnieuw proberen" not in group_page.lower() and 'name="variabelen"' not in group_page  # viewer
    for action in ("opnieuw", "annuleren"):
        refused = viewer.post(f"/incidenten/{sig}/{action}", data={"csrf": csrf_of(group_page), "bevestig": "ja"})
        assert refused.status_code == 403
    assert len(fake.commands) == 4  # nothing was retried

    admin, _ = sign_in(console.url, "functioneel-beheerder")
    group_page = admin.get(f"/incidenten/{sig}").text
    assert "Alle 3 opnieuw proberen" in group_page
    csrf = csrf_of(group_page)
    assert admin.post(f"/incidenten/{sig}/opnieuw", data={"variabelen": "{}"}).status_code == 403  # no CSRF
    bad_json = admin.post(f"/incidenten/{sig}/opnieuw", data={"csrf": csrf, "variabelen": "{bedrag: 1"})
    assert bad_json.status_code == 400 and "geen geldige JSON" in bad_json.text
    # test_process has no variables functioneel beheer may change: the engine refuses each, nothing is retried
    refused = await asyncio.to_thread(admin.post, f"/incidenten/{sig}/opnieuw",
                                      data={"csrf": csrf, "variabelen": '{"bedrag": 1}'})
    assert refused.status_code == 200
    assert {c: kind for c, (kind, _) in _outcomes(refused.text).items()} == dict.fromkeys(cases, "geweigerd")
    assert "not_allowed" not in refused.text and "mag functioneel beheer niet wijzigen" in refused.text
    assert len(fake.commands) == 4 and len(_incidents(engine.url)) == 4

    broken["register"] = False  # the service is fixed
    # In a thread: the fake service answers on this test's event loop while the console follows the cases.
    outcome = await asyncio.to_thread(admin.post, f"/incidenten/{sig}/opnieuw", data={"csrf": csrf})
    assert outcome.status_code == 200, outcome.text
    reported = _outcomes(outcome.text)
    assert reported == dict.fromkeys(cases, ("opgelost", "opgelost: de zaak is verder")), reported
    assert "3 zaken: 3 opgelost." in outcome.text
    for case_id in cases:
        case = httpx.get(f"{engine.url}/api/v1/zaken/{case_id}", headers=ADMIN, timeout=10).json()
        assert "Task_registreer" not in case["actieveElementen"]
        assert not [i for i in case["incidenten"] if not i["resolved"]]
    assert [i["zaakId"] for i in _incidents(engine.url)] == ["zaak-anders"]  # the other group: untouched
    # the case page: every command the case sent with its reply (the failed one, its retry, what came after)
    commands = admin.get(f"/zaken/{cases[0]}").text.split('id="h-opdrachten"')[1].split("</table>")[0]
    rows = commands.split("<tbody>")[1].split("</tr>")[:-1]
    registreer = [r for r in rows if "ips.test.registreer.v1" in r]
    assert len(registreer) == 2, commands
    assert "mislukt: ONVERWACHT register niet bereikbaar (incident)" in registreer[0] and "voltooid" in registreer[1]
    sent = {c.id for c in fake.commands if c.subject == cases[0]}
    assert sent and all(command_id in commands for command_id in sent)
    assert admin.get(f"/incidenten/{sig}").status_code == 404
    # the definition view: per element active, with an incident, completed
    assert httpx.get(stats_url, headers=ADMIN, timeout=10).json()["elementen"]["Task_registreer"] == {
        "actief": 1, "incident": 1, "afgerond": 3}
    view = admin.get(f"/definities/{definition}").text
    row = next(r for r in view.split("</tr>") if "<code>Task_registreer</code>" in r)
    assert re.findall(r'<td class="getal">(\d+)</td>', row) == ["1", "1", "3"], row
    assert '"Task_registreer": {"actief": 1, "afgerond": 3, "incident": 1}' in view  # the badges' figures
    assert f'href="/definities/{definition}"' in admin.get("/definities").text

    audit = admin.get("/audit").text
    assert audit.count(">opnieuw proberen<") == 3 and f"groep: <code>{sig}</code>" in audit

    # cancel one case of the other group: only with the box ticked
    [other] = [s for s in groups if s != sig]
    page = admin.get(f"/incidenten/{other}").text
    assert admin.post(f"/incidenten/{other}/annuleren", data={"csrf": csrf}).status_code == 400
    cancelled = admin.post(f"/incidenten/{other}/annuleren", data={"csrf": csrf_of(page), "bevestig": "ja",
                                                                     "zaak": "zaak-anders"})
    assert cancelled.status_code == 200 and _outcomes(cancelled.text) == {"zaak-anders": ("geannuleerd",
                                                                                         "geannuleerd")}
    assert httpx.get(f"{engine.url}/api/v1/zaken/zaak-anders", headers=ADMIN,
                     timeout=10).json()["status"] == "cancelled"
    await fake.stop()


async def test_variables_set_before_a_retry_are_allow_listed_and_the_new_error_is_reported(service, broker):
    engine = service("process_engine").start()
    console = service("console").start(IPSFLOW_CONSOLE_ENGINE_URL=engine.url)

    def reply(event: Any) -> tuple[str, dict[str, Any]] | None:
        message = "onbekende gemeente" if event.data.get("gemeente_code") == "0000" else "register niet bereikbaar"
        return "ips.opdracht.mislukt.v1", {"code": "ONVERWACHT", "message": message}

    fake = FakeServices(broker, pattern="ips.aanvraag.toetsen.v1", reply=reply)
    await fake.start()
    await broker.publish(new_event("ips.aanvraag.ingediend.v1", service="test", subject="zaak-var", data={
        "aanvraagId": "zaak-var", "gemeenteCode": "0000", "woongemeenteCode": "0000", "trajectType": "CMD",
        "aanvraagdatum": "2026-03-02", "gewensteStartdatum": "2026-06-01", "ggzKvkNummer": "41178211",
        "ontvangenOp": "2026-03-02T09:00:00+01:00"}), EVENTS)

    async def incident() -> bool:
        return len(await asyncio.to_thread(_incidents, engine.url)) == 1
    await eventually(incident, timeout=60, what="the incident")
    admin, _ = sign_in(console.url, "functioneel-beheerder")
    [sig] = dict(GROUP_LINK.findall(admin.get("/incidenten").text))
    page = admin.get(f"/incidenten/{sig}").text
    assert "<code>aanvraag</code>" in page and "<code>besluit</code>" not in page  # the editable names
    aanvraag = httpx.get(f"{engine.url}/api/v1/zaken/zaak-var", headers=ADMIN,
                         timeout=10).json()["variabelen"]["aanvraag"]

    async def retry(variables: dict[str, Any]) -> httpx.Response:
        return await asyncio.to_thread(admin.post, f"/incidenten/{sig}/opnieuw",
                                       data={"csrf": csrf_of(page), "variabelen": json.dumps(variables)})

    for forbidden, reason in (({"besluit": "toekennen"}, "mag functioneel beheer niet wijzigen"),
                              ({"aanvraag": {**aanvraag, "bsn": "x"}}, "persoonsgegevens"),
                              ({"aanvraag": {**aanvraag, "gemeenteCode": "1234 56 782"}}, "BSN")):
        answer = await retry(forbidden)
        [(kind, text)] = _outcomes(answer.text).values()
        assert kind == "geweigerd" and reason in text, text
        assert "1234 56 782" not in answer.text  # the refused value is never shown
    assert len(fake.commands) == 1

    answer = await retry({"aanvraag": {**aanvraag, "gemeenteCode": "0957"}})
    assert _outcomes(answer.text) == {"zaak-var": ("mislukt", "opnieuw mislukt: ONVERWACHT register niet "
                                                              "bereikbaar")}, answer.text
    assert len(fake.commands) == 2 and fake.commands[1].data["gemeente_code"] == "0957"  # the corrected value
    case = httpx.get(f"{engine.url}/api/v1/zaken/zaak-var", headers=ADMIN, timeout=10).json()
    assert case["variabelen"]["aanvraag"]["gemeenteCode"] == "0957"
    assert any(j["what"] == "variabelen gewijzigd" and j["names"] == ["aanvraag"] for j in case["journaal"])
    audit = html.unescape(admin.get("/audit").text)  # as the browser shows it
    assert "variabelen wijzigen en opnieuw proberen" in audit and '"gemeenteCode": "0000"' in audit
    await fake.stop()
