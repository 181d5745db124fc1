"""The console's queues and parking lots (services/console/wachtrijen.py, dlq.py) against a real engine and broker:
a message the engine parked (its case did not exist yet) is shown with why and whose case, without personal data;
replayed from the console once the case waits for it, it is applied exactly once; purge needs the queue's name
typed; a viewer sees no buttons and gets 403."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import aio_pika
import httpx
import pytest

from console.dlq import Parkeerplaats
from servicekit.broker import ATTEMPT_HEADER, ERROR_HEADER, EVENTS, Broker
from servicekit.envelope import new_event
from tests.conftest import eventually
from tests.support.console import bpmn_dir_with_test_process, csrf_of, sign_in
from tests.support.fake_services import FakeServices
from tests.support.queues import parked_ids
from tests.support.tokens import ADMIN

CASE = "zaak-geparkeerd"
BSN = "123456782"  # passes the elfproef


@pytest.fixture
async def broker(settings_for):
    b = Broker(settings_for("test-driver"))
    await b.connect()
    yield b
    await b.close()


async def parked(broker: Broker, queue: str) -> int:
    return len(await parked_ids(broker.settings.amqp_url, broker.name(f"{queue}.dlq")))


def _one_time_value(page: str, action: str) -> str:
    """The one-time value of the page's form that posts to ``.../<action>``."""
    form = page.split(f'/{action}"', 1)[1].split("</form>", 1)[0]
    found = re.search(r'name="eenmalig" value="([^"]+)"', form)
    assert found, f"no one-time value in the {action} form"
    return found.group(1)


def _case(engine_url: str) -> dict[str, Any]:
    return httpx.get(f"{engine_url}/api/v1/zaken/{CASE}", headers=ADMIN, timeout=10).json()  # type: ignore[no-any-return]


async def test_a_parked_message_is_shown_without_personal_data_and_replayed_exactly_once(service, broker,
                                                                                        tmp_path, namespace):
    engine = service("process_engine").start(IPSFLOW_BPMN_DIR=bpmn_dir_with_test_process(tmp_path),
                                             IPSFLOW_CATALOGUE_FILE="")
    notifications = service("notifications").start()
    console = service("console").start(IPSFLOW_CONSOLE_ENGINE_URL=engine.url,
                                       IPSFLOW_CONSOLE_NOTIFICATIONS_URL=notifications.url,
                                       IPSFLOW_CONSOLE_GRANTS_URL="http://127.0.0.1:9")  # nothing listens there
    fake = FakeServices(broker)
    await fake.start()
    # The confirmation arrives before its case exists: the engine retries it and then parks it.
    confirmation = new_event("ips.test.bevestigd.v1", service="test", subject=CASE, data={"bevestigd": True})
    await broker.publish(confirmation, EVENTS)

    async def one_parked() -> bool:
        return await parked(broker, "process_engine") == 1
    await eventually(one_parked, timeout=60, what="the confirmation to be parked")
    # A second parked message as another service might have parked it, with personal data in its body
    channel = await broker.new_channel(prefetch=1)
    body = json.dumps({"specversion": "1.0", "id": "met-persoonsgegevens", "type": "ips.test.bevestigd.v1",
                       "source": "test", "subject": "zaak-ander",
                       "data": {"aanvraagId": "A-7", "bsn": BSN, "naam": "Jan Jansen", "toelichting": f"bsn {BSN}",
                                "gemeenteCode": "0957"}}).encode()
    await channel.default_exchange.publish(aio_pika.Message(body, message_id="met-persoonsgegevens", headers={
        ATTEMPT_HEADER: 4, ERROR_HEADER: f"ValueError: onbekend nummer {BSN}", "x-mijn-kop": "Jan",
        "x-death": [{"queue": f"{namespace}process_engine", "reason": "delivery_limit", "count": 20,
                     "exchange": "", "routing-keys": ["x"]}]}), routing_key=f"{namespace}process_engine.dlq")
    await channel.close()

    viewer, _ = sign_in(console.url, "viewer")

    async def listed() -> bool:  # the management API samples every few seconds
        page = await asyncio.to_thread(viewer.get, "/wachtrijen")
        return 'aria-label="2 geparkeerde berichten van process_engine"' in page.text
    await eventually(listed, timeout=30, what="the queues page to show two parked messages")
    lot = viewer.get("/wachtrijen/process_engine/geparkeerd").text
    assert '<strong id="aantal-geparkeerd">2</strong>' in lot
    # the count is the broker's answer to the gets, also past what is shown (and both stay parked)
    lot_of_engine = Parkeerplaats(broker.settings.amqp_url, namespace, broker.name("process_engine"))
    counted, first = await lot_of_engine.lees(limit=1)
    assert counted == 2 and len(first) == 1 and await parked(broker, "process_engine") == 2
    assert confirmation.id in lot and "CaseNotYetKnown" in lot and f'href="/zaken/{CASE}"' in lot
    assert "delivery_limit" in lot and "20 keer" in lot and f"wachtrij {namespace}process_engine" in lot
    assert BSN not in lot and "Jan" not in lot and "A-7" in lot and "0957" in lot  # ids and codes, no person
    assert "«verborgen»" in lot and "\\u00ab" not in lot  # what is hidden says so in plain words
    assert "Terugzetten" not in lot and "Legen" not in lot  # a viewer gets no buttons
    csrf = csrf_of(lot)
    for action, form in (("terugzetten", {"alle": "ja"}), ("terugzetten", {"bericht": confirmation.id}),
                         ("legen", {"bevestiging": "process_engine"})):
        assert viewer.post(f"/wachtrijen/process_engine/{action}", data={"csrf": csrf, **form}).status_code == 403
    assert await parked(broker, "process_engine") == 2

    await broker.publish(new_event("ips.test.gestart.v1", service="test", subject=CASE,
                                   data={"aanvraag_id": CASE, "bedrag": 120_000}), EVENTS)

    async def waiting() -> bool:
        case = await asyncio.to_thread(_case, engine.url)
        return "Task_bevestiging" in case.get("actieveElementen", [])
    await eventually(waiting, timeout=60, what="the case to wait for its confirmation")

    admin, _ = sign_in(console.url, "functioneel-beheerder")
    lot = admin.get("/wachtrijen/process_engine/geparkeerd").text
    assert f'aria-label="Bericht {confirmation.id} terugzetten naar process_engine"' in lot
    assert admin.post("/wachtrijen/process_engine/terugzetten",
                      data={"bericht": confirmation.id}).status_code == 403  # no CSRF token
    replayed = admin.post("/wachtrijen/process_engine/terugzetten",
                          data={"csrf": csrf_of(lot), "bericht": confirmation.id})
    assert replayed.status_code == 200 and "1 berichten teruggezet" in replayed.text
    assert await parked(broker, "process_engine") == 1  # only that one left the parking lot

    async def moved_on() -> bool:
        case = await asyncio.to_thread(_case, engine.url)
        return "Task_bevestiging" not in case.get("actieveElementen", [])
    await eventually(moved_on, timeout=30, what="the replayed confirmation to move the case on")
    again = admin.post("/wachtrijen/process_engine/terugzetten", data={"csrf": csrf_of(lot), "bericht":
                                                                        confirmation.id})
    assert again.status_code == 409
    await asyncio.sleep(1)
    received = [j for j in _case(engine.url)["journaal"] if j.get("message") == "ips.test.bevestigd.v1"]
    assert len(received) == 1, received  # applied exactly once

    # purge: only with the queue's name typed; the form as the page gave it, with its one-time value
    purge_form = {"csrf": csrf_of(lot), "eenmalig": _one_time_value(lot, "legen")}
    wrong = admin.post("/wachtrijen/process_engine/legen", data={**purge_form, "bevestiging": "ja"})
    assert wrong.status_code == 400 and await parked(broker, "process_engine") == 1
    purged = admin.post("/wachtrijen/process_engine/legen", data={**purge_form, "bevestiging": "process_engine"})
    assert purged.status_code == 200 and "1 geparkeerde berichten" in purged.text  # corrected, the same form counts
    assert await parked(broker, "process_engine") == 0
    # the answer page refreshed (the same form sent again) purges nothing that was parked since
    channel = await broker.new_channel(prefetch=1)
    await channel.default_exchange.publish(aio_pika.Message(b"{}", message_id="later-geparkeerd"),
                                           routing_key=broker.name("process_engine.dlq"))
    await channel.close()
    resent = admin.post("/wachtrijen/process_engine/legen", data={**purge_form, "bevestiging": "process_engine"})
    assert resent.status_code == 409 and "al verstuurd" in resent.text
    assert 'href="/wachtrijen/process_engine/geparkeerd"' in resent.text  # on to the lot as it is now
    assert await parked_ids(broker.settings.amqp_url, broker.name("process_engine.dlq")) == ["later-geparkeerd"]
    fresh = admin.get("/wachtrijen/process_engine/geparkeerd").text
    assert _one_time_value(fresh, "legen") != purge_form["eenmalig"]  # a new page, a new form
    purged = admin.post("/wachtrijen/process_engine/legen", data={
        "csrf": csrf_of(fresh), "bevestiging": "process_engine", "eenmalig": _one_time_value(fresh, "legen")})
    assert purged.status_code == 200 and await parked(broker, "process_engine") == 0
    assert admin.get("/wachtrijen/bestaat-niet/geparkeerd").status_code == 404
    # the case page: its letters from notifications' own API (none yet) and its commands with their replies;
    # grants is asked only for the beschikkingen a letter or the case names (none here)
    page = admin.get(f"/zaken/{CASE}").text
    assert "Geen brieven." in page and "notifications antwoordde" not in page
    assert "Geen beschikkingen." in page and "ips.test.registreer.v1" in page and "voltooid" in page
    audit = admin.get("/audit").text
    assert ">terugzetten<" in audit and ">parkeerplaats legen<" in audit and BSN not in audit
    assert re.search(rf"bericht: <code>{confirmation.id}</code>", audit)
    await fake.stop()


async def test_replaying_a_whole_lot_runs_in_the_background_with_its_progress_and_replays_each_message_once(
        service, broker, tmp_path, namespace):
    engine = service("process_engine").start(IPSFLOW_BPMN_DIR=bpmn_dir_with_test_process(tmp_path),
                                             IPSFLOW_CATALOGUE_FILE="")
    console = service("console").start(IPSFLOW_CONSOLE_ENGINE_URL=engine.url,
                                       IPSFLOW_CONSOLE_REPLAY_PER_SECOND="2")  # 8 messages: 4 s
    # Messages of a type nobody knows: the engine parks each again at once when it comes back, while the replay
    # still runs. The replay takes only what was parked when it began, each once.
    channel = await broker.new_channel(prefetch=1)
    ids = [f"onbekend-{i}" for i in range(8)]
    for message_id in ids:
        body = json.dumps({"specversion": "1.0", "id": message_id, "type": "ips.test.onbekend.v1", "source": "test",
                           "subject": f"zaak-{message_id}", "data": {}}).encode()
        await channel.default_exchange.publish(aio_pika.Message(body, message_id=message_id),
                                               routing_key=broker.name("process_engine.dlq"))
    await channel.close()

    async def listed() -> bool:  # the queues page lists a lot from the management API's samples
        return await asyncio.to_thread(
            lambda: admin.get("/wachtrijen/process_engine/geparkeerd").status_code == 200)
    admin, _ = sign_in(console.url, "functioneel-beheerder")
    await eventually(listed, timeout=30, what="the lot of process_engine on the console")
    lot = admin.get("/wachtrijen/process_engine/geparkeerd").text
    form = {"csrf": csrf_of(lot), "eenmalig": _one_time_value(lot, "terugzetten"), "alle": "ja"}
    assert admin.post("/wachtrijen/process_engine/terugzetten", data={**form, "aantal": "0"}).status_code == 400
    started = admin.post("/wachtrijen/process_engine/terugzetten", data=form)
    assert started.status_code == 303, started.text
    progress_url = started.headers["location"]
    assert progress_url.startswith("/wachtrijen/process_engine/terugzettingen/")
    first = admin.get(progress_url).text
    assert 'http-equiv="refresh"' in first and 'id="aantal-teruggezet"' in first  # still running: 8 take 4 s
    assert admin.post("/wachtrijen/process_engine/terugzetten", data=form).status_code == 409  # sent twice: once

    async def done() -> bool:
        page = await asyncio.to_thread(lambda: admin.get(progress_url).text)
        return 'id="samenvatting"' in page
    await eventually(done, timeout=60, what="the replay to finish")
    page = admin.get(progress_url).text
    assert "8 berichten teruggezet naar process_engine" in page and 'http-equiv="refresh"' not in page
    assert all(f"<code>{message_id}</code>" in page for message_id in ids)
    assert f'href="{progress_url}"' in admin.get("/wachtrijen/process_engine/geparkeerd").text  # found again later

    async def all_parked_again() -> bool:
        return sorted(await parked_ids(broker.settings.amqp_url, broker.name("process_engine.dlq"))) == ids
    await eventually(all_parked_again, timeout=30, what="the engine to park all eight again")
    audit = admin.get("/audit").text
    assert audit.count(">terugzetten<") == 8  # one audit entry per replayed message, none twice
    assert admin.get("/wachtrijen/process_engine/terugzettingen/bestaat-niet").status_code == 404

    # The console stops in the middle of a replay: the next console process shows where it stopped, and nothing is
    # lost (what it had not replayed never left the lot; the engine parks the replayed ones again).
    lot = admin.get("/wachtrijen/process_engine/geparkeerd").text
    started = admin.post("/wachtrijen/process_engine/terugzetten", data={
        "csrf": csrf_of(lot), "eenmalig": _one_time_value(lot, "terugzetten"), "alle": "ja"})
    assert started.status_code == 303, started.text
    await asyncio.sleep(2)  # at 2 a second: a few done, most not
    await asyncio.to_thread(console.stop)
    console.start(IPSFLOW_CONSOLE_ENGINE_URL=engine.url, IPSFLOW_CONSOLE_REPLAY_PER_SECOND="2")
    stopped = admin.get(started.headers["location"]).text  # the session lives in the database: still signed in
    found = re.search(r"afgebroken\s+na (\d+) van 8 berichten: de console stopte", stopped)
    assert found and 0 < int(found.group(1)) < 8, stopped
    await eventually(all_parked_again, timeout=30, what="all eight parked again after the interrupted replay")
    audit = admin.get("/audit").text
    assert audit.count(">terugzetten<") == 8 + int(found.group(1))  # the ones it did replay, each in the audit
