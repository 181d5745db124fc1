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

    # purge: only with the queue's name typed
    wrong = admin.post("/wachtrijen/process_engine/legen", data={"csrf": csrf_of(lot), "bevestiging": "ja"})
    assert wrong.status_code == 400 and await parked(broker, "process_engine") == 1
    purged = admin.post("/wachtrijen/process_engine/legen", data={"csrf": csrf_of(lot),
                                                                   "bevestiging": "process_engine"})
    assert purged.status_code == 200 and "1 geparkeerde berichten" in purged.text
    assert await parked(broker, "process_engine") == 0
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
