"""Crash and restart behaviour of the consumer runner and the outbox relay, on the real broker and database."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import aio_pika
import httpx

from servicekit.broker import EVENTS, Broker
from servicekit.envelope import new_event
from servicekit.settings import ServiceSettings
from tests.conftest import eventually
from tests.support.ips import application, ggz
from tests.support.queues import messages_handled, parked_ids

AANVRAAG = application(clientReferentie="K-001")


async def _dossier(mongo: Any, namespace: str, case_id: str) -> dict[str, Any] | None:
    db = mongo[f"{namespace}ipsflow_notifications".replace(".", "_")]
    return await db.dossiers.find_one({"_id": case_id})


async def test_consumer_killed_after_store_before_ack_has_no_second_effect(service, settings_for, mongo, namespace):
    notifications = service("notifications").start(IPSFLOW_TEST_FAULT="consumer-exit-before-ack")
    broker = Broker(settings_for("test-publisher"))
    await broker.connect()
    event = new_event("ips.aanvraag.ingediend.v1", service="test", subject="zaak-crash-1",
                      data={"aanvraagId": "zaak-crash-1", "gemeenteCode": "0957", "trajectType": "CMD"})
    await broker.publish(event, EVENTS)
    await broker.close()

    assert notifications.wait_exit(timeout=30) == 70, "the fault should kill the consumer after its store"
    stored = await _dossier(mongo, namespace, "zaak-crash-1")
    assert stored is not None and stored["berichten"] == 1

    notifications.start()  # same queue, no fault: the unacked message is redelivered

    async def redelivery_acknowledged() -> bool:  # by the new process (its counter starts at 0)
        return messages_handled(notifications.url, event.type) == 1
    await eventually(redelivery_acknowledged, what="the redelivered message to be acknowledged")
    # the redelivery was handled (acknowledged) and changed nothing
    stored = await _dossier(mongo, namespace, "zaak-crash-1")
    assert stored is not None
    assert stored["berichten"] == 1
    assert stored["applied"] == [event.id]


async def test_relay_killed_after_publish_before_clear_has_no_second_effect(service, mongo, namespace):
    notifications = service("notifications").start()
    # grants binds intake's volgnummer event: the relay publishes mandatory and holds an event no queue takes
    service("grants").start()
    intake = service("intake").start(IPSFLOW_TEST_FAULT="relay-exit-after-publish")
    response = httpx.post(f"{intake.url}/api/v1/aanvragen", json=AANVRAAG, headers=ggz(), timeout=10)
    assert response.status_code == 201
    case_id = response.json()["id"]
    assert intake.wait_exit(timeout=30) == 71

    intake_db = mongo[f"{namespace}ipsflow_intake".replace(".", "_")]
    doc = await intake_db.aanvragen.find_one({"_id": case_id})
    assert doc["has_outbox"] is True, "the relay died before clearing, so the event is still in the outbox"

    async def delivered_once() -> bool:
        d = await _dossier(mongo, namespace, case_id)
        return d is not None and d["berichten"] == 1
    await eventually(delivered_once, what="the first publication to be consumed")

    assert messages_handled(notifications.url, "ips.aanvraag.ingediend.v1") == 1
    intake.start()  # the relay publishes the same event again, then clears the outbox

    async def cleared() -> bool:
        d = await intake_db.aanvragen.find_one({"_id": case_id})
        return d["has_outbox"] is False
    await eventually(cleared, what="the outbox to be cleared")

    async def duplicate_consumed() -> bool:  # handled (as a duplicate) and acknowledged
        return messages_handled(notifications.url, "ips.aanvraag.ingediend.v1") == 2
    await eventually(duplicate_consumed, what="the duplicate to be consumed")
    d = await _dossier(mongo, namespace, case_id)
    assert d["berichten"] == 1
    assert len(d["applied"]) == 1


def _cli(*args: str, infra, namespace: str) -> subprocess.CompletedProcess[str]:
    env = {"IPSFLOW_AMQP_URL": infra.amqp_url, "IPSFLOW_RABBITMQ_MANAGEMENT_URL": infra.management_url,
           "IPSFLOW_NAMESPACE": namespace, "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "ipsflow_cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=60, check=False)


async def test_malformed_message_is_parked_shown_and_replayed(service, infra, namespace):
    notifications = service("notifications").start()
    settings = ServiceSettings(service_name="test", amqp_url=infra.amqp_url, namespace=namespace)
    broker = Broker(settings)
    await broker.connect()
    await broker.publish_raw(EVENTS, "ips.aanvraag.ingediend.v1", b"{this is not an envelope",
                             message_id="kapot-1", type_="ips.aanvraag.ingediend.v1")
    await broker.close()
    queue = f"{namespace}notifications"

    async def parked_in_table() -> bool:
        out = _cli("queues", "--json", "--namespace", namespace, infra=infra, namespace=namespace)
        rows = {r["queue"]: r for r in json.loads(out.stdout)}
        return rows.get(queue, {}).get("dlq") == 1
    await eventually(parked_in_table, timeout=30, interval=0.5, what="`ipsflow queues` to show dlq depth 1")

    table = _cli("queues", "--namespace", namespace, infra=infra, namespace=namespace)
    assert table.returncode == 0 and queue in table.stdout

    shown = _cli("dlq", "show", queue, "--json", infra=infra, namespace=namespace)
    rows = json.loads(shown.stdout)
    assert [r["id"] for r in rows] == ["kapot-1"]
    assert "malformed envelope" in rows[0]["reason"]

    # Stop the consumer so the replayed message stays visible on the queue it came from.
    notifications.stop()
    replayed = _cli("dlq", "replay", queue, infra=infra, namespace=namespace)
    assert replayed.returncode == 0, replayed.stderr
    assert "1 bericht(en) teruggezet" in replayed.stdout

    conn = await aio_pika.connect(infra.amqp_url)
    async with conn:
        ch = await conn.channel()
        main = await ch.get_queue(queue, ensure=True)
        message = await main.get(no_ack=True)  # the one message on its queue (taken, so no false count of 0)
        assert message.message_id == "kapot-1" and await main.get(no_ack=True, fail=False) is None
        assert await parked_ids(infra.amqp_url, f"{queue}.dlq") == []
        assert message.body == b"{this is not an envelope"


async def test_cli_replay_takes_each_message_once_when_its_consumer_parks_it_again(service, infra, namespace):
    service("process_engine").start()  # parks a message of a type it does not know at once
    dlq = f"{namespace}process_engine.dlq"
    ids = [f"onbekend-{i}" for i in range(5)]
    conn = await aio_pika.connect(infra.amqp_url)
    async with conn:
        ch = await conn.channel()
        for message_id in ids:
            body = json.dumps({"specversion": "1.0", "id": message_id, "type": "ips.test.onbekend.v1",
                               "source": "test", "subject": f"zaak-{message_id}", "data": {}}).encode()
            await ch.default_exchange.publish(aio_pika.Message(body, message_id=message_id), routing_key=dlq)
    # Parked again within milliseconds while the replay runs: it takes only the five that were there when it began
    # (before, it went round while the engine kept up: 18, 684 and 32 replays of these five in three runs).
    replayed = _cli("dlq", "replay", f"{namespace}process_engine", infra=infra, namespace=namespace)
    assert replayed.returncode == 0, replayed.stderr
    assert "5 bericht(en) teruggezet" in replayed.stdout

    async def parked_again() -> bool:
        return sorted(await parked_ids(infra.amqp_url, dlq)) == ids
    await eventually(parked_again, timeout=30, what="the engine to park all five again")
