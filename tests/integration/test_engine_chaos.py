"""200 concurrent cases while engine workers are killed with SIGKILL and restarted.

Every case must end exactly once, every command must be issued once (the fake services see one distinct
command id per case and task, however often it is redelivered), no case may be stuck, and no timer may fire
twice, with one worker and with two competing workers.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

import pytest

from servicekit.broker import EVENTS, Broker
from servicekit.envelope import new_event
from tests.conftest import eventually
from tests.support.fake_services import FakeServices
from tests.support.queues import parked_ids

BPMN_DIR = str(Path(__file__).resolve().parents[1] / "bpmn")
CASES = 200
SMALL = 120_000
# A confirmation can overtake its case's start while workers die; it is retried with delay until the case
# exists, so the retry window must outlast a restart (production: 1 s, 5 s, 30 s).
ENV = {"IPSFLOW_BPMN_DIR": BPMN_DIR, "IPSFLOW_CATALOGUE_FILE": "", "IPSFLOW_TIMER_LEASE_SECONDS": "3",
       "IPSFLOW_RETRY_DELAYS_MS": "[500, 2000, 5000]", "IPSFLOW_MAX_ATTEMPTS": "8"}


@pytest.fixture
async def broker(settings_for):
    # Closed in teardown, before the namespace is removed, also when the test fails: a connection left open
    # restores its channels' exchanges and queue after the removal, and the namespace stays behind.
    b = Broker(settings_for("chaos-driver"))
    await b.connect()
    yield b
    await b.close()


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigkill_chaos_every_case_ends_exactly_once(service, broker, mongo, namespace, workers):
    engines = [service("process_engine") for _ in range(workers)]
    for e in engines:
        e.start(**ENV)
    fake = FakeServices(broker)
    await fake.start()
    for i in range(CASES):
        case = f"zaak-{i:03d}"
        await broker.publish(new_event("ips.test.gestart.v1", service="test", subject=case,
                                       data={"aanvraag_id": case, "bedrag": SMALL}), EVENTS)
        # the confirmation may arrive before the case waits for it; the engine keeps it
        await broker.publish(new_event("ips.test.bevestigd.v1", service="test", subject=case,
                                       data={"bevestigd": True}), EVENTS)

    engine_db = mongo[f"{namespace}ipsflow_process_engine".replace(".", "_")]
    # an ended case moves from instances to closed_instances; one caught between the two writes is in both
    collections = (engine_db.instances, engine_db.closed_instances)
    rng = random.Random(20261123)
    kills = 0
    for _ in range(6):
        await asyncio.sleep(rng.uniform(0.5, 2.5))
        victim = rng.choice(engines)
        victim.kill()
        kills += 1
        await asyncio.sleep(rng.uniform(0.1, 1.0))
        victim.start(**ENV)

    async def all_completed() -> bool:
        return len({d["_id"] for c in collections
                    for d in await c.find({"status": "completed"}, {"_id": 1}).to_list(None)}) == CASES
    await eventually(all_completed, timeout=300, interval=1, what=f"{CASES} completed cases")
    await asyncio.sleep(2)  # late redeliveries must not change anything
    parked = await parked_ids(broker.settings.amqp_url, f"{namespace}process_engine.dlq")
    assert parked == [], f"{len(parked)} messages were parked"
    docs = list({d["_id"]: d for c in collections
                 for d in await c.find({}, {"journal": 1, "status": 1, "kept": 1, "incidents": 1}).to_list(None)
                 }.values())
    assert len(docs) == CASES and kills == 6
    for doc in docs:
        what = Counter(j["what"] for j in doc["journal"])
        assert what["gestart"] == 1 and what["afgerond"] == 1, (doc["_id"], what)
        assert what["timer afgegaan"] == 1, (doc["_id"], what)
        assert doc["kept"] == [] and doc["incidents"] == []
    for command_type in ("ips.test.registreer.v1", "ips.test.beschikking.v1", "ips.test.betaling.v1"):
        ids = {c.id for c in fake.commands if c.type == command_type}
        subjects = Counter(c.subject for c in fake.commands if c.type == command_type)
        assert len(ids) == CASES, f"{command_type}: {len(ids)} distinct commands for {CASES} cases"
        assert set(subjects.values()) == {1}, f"{command_type} issued twice for a case"
    await fake.stop()

