"""The pieces of a local stack that survives a day of use: namespace names with their age, what a sweep removes,
addresses in start-up errors without credentials, and /ready naming the dependency that is missing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from ipsflow_cli.namespaces import DAY, Namespace, classify, leftovers, new_namespace
from servicekit.http import add_health, create_app
from servicekit.runtime import DependencyUnavailable, address_of

NOW = 1_800_000_000.0


def test_a_new_namespace_carries_its_creation_time_and_is_a_valid_database_name_prefix():
    ns = new_namespace("t", now=NOW)
    assert ns.endswith(".") and len(ns) <= 16
    assert classify(ns) == (ns, NOW)
    assert classify(f"{ns}intake.retry.1") == (ns, NOW)
    database = f"{ns}ipsflow_process_engine".replace(".", "_")
    assert classify(database) == (ns, NOW)
    assert database.replace("_", "").isalnum() and len(database) <= 63
    assert new_namespace("bench", now=NOW) != new_namespace("bench", now=NOW)
    with pytest.raises(ValueError):
        new_namespace("production")


@pytest.mark.parametrize(("name", "key"), [
    ("t1a2b3c4d.intake", "t1a2b3c4d."),
    ("t1a2b3c4d_ipsflow_grants", "t1a2b3c4d."),
    ("bench1a2b3c.grants.dlq", "bench1a2b3c."),
    ("bench1a2b3c4d.sk1.bench.retry.2", "bench1a2b3c4d."),
    ("bench_engine_1a2b3c4d", "bench_engine_1a2b3c4d"),
    ("acc7f3e.ips.events", "acc7f3e."),
])
def test_names_of_the_older_formats_are_found_without_an_age(name, key):
    assert classify(name) == (key, None)


@pytest.mark.parametrize("name", ["intake", "ips.commands", "intake.dlq", "ipsflow_intake", "amq.topic", "admin",
                                  "tenant1.intake", "test_data"])
def test_the_systems_own_names_are_never_a_run_namespace(name):
    assert classify(name) is None


def _ns(key: str, created: float | None, consumers: int = 0) -> Namespace:
    return Namespace(key, created, [f"{key}q"], [], [], consumers)


def test_a_sweep_removes_what_is_older_than_a_day_and_idle_and_keeps_the_rest():
    aged = _ns("aged.", NOW - DAY - 60)
    fresh = _ns("fresh.", NOW - 60)
    aged_but_consuming = _ns("busy.", NOW - 2 * DAY, consumers=1)
    legacy_new = _ns("t00000001.", None)
    legacy_seen_long_ago = _ns("t00000002.", None)
    legacy_consuming = _ns("t00000003.", None, consumers=2)
    seen = {"t00000001.": NOW - 60, "t00000002.": NOW - DAY - 1, "t00000003.": NOW - 3 * DAY}
    everything = [aged, fresh, aged_but_consuming, legacy_new, legacy_seen_long_ago, legacy_consuming]
    assert leftovers(everything, NOW, DAY, seen) == [aged, legacy_seen_long_ago]
    # `ipsflow stack sweep --legacy`: names without a time count at once, unless something still consumes.
    assert leftovers(everything, NOW, DAY, seen, legacy_now=True) == [aged, legacy_new, legacy_seen_long_ago]


def test_addresses_in_start_up_errors_carry_no_credentials():
    assert address_of("amqp://ipsflow:s3cr3t@rabbit.example:5671/ips") == "rabbit.example:5671/ips"
    assert address_of("amqp://guest:guest@127.0.0.1:5672/") == "127.0.0.1:5672"
    assert address_of("mongodb://u:p@db1:27017,db2:27017/?replicaSet=rs0") == "db1:27017,db2:27017"
    message = str(DependencyUnavailable("rabbitmq", "127.0.0.1:5672", 30))
    assert message.startswith("rabbitmq at 127.0.0.1:5672 did not answer within 30 s")


@pytest.mark.parametrize(("checks", "detail"), [
    ({"rabbitmq": False, "mongodb": True}, "Geen verbinding met RabbitMQ."),
    ({"rabbitmq": True, "mongodb": False}, "Geen verbinding met MongoDB."),
    ({"rabbitmq": False, "mongodb": False}, "Geen verbinding met RabbitMQ en MongoDB."),
])
def test_ready_names_the_dependency_that_is_missing(checks, detail):
    app = create_app("t", "t")

    async def ready_checks() -> dict[str, bool]:
        return checks

    add_health(app, ready_checks)
    response = TestClient(app).get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"] == checks
    assert body["detail"] == detail
    assert body["missing"] == [name for name, ok in checks.items() if not ok]


def test_ready_when_everything_answers():
    app = create_app("t", "t")

    async def ready_checks() -> dict[str, bool]:
        return {"rabbitmq": True, "mongodb": True}

    add_health(app, ready_checks)
    response = TestClient(app).get("/ready")
    assert response.status_code == 200 and response.json()["status"] == "ready"


def test_a_run_given_its_broker_and_database_cleans_up_on_the_local_stacks_management_api(monkeypatch):
    # A benchmark on a moved stack names the broker and the database; the clean-up of its namespace must reach the
    # same broker's management API (a fixed 15672 sent it to another broker and its queues stayed behind).
    from tests.support.infra import discover

    monkeypatch.setenv("IPSFLOW_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5682/")
    monkeypatch.setenv("IPSFLOW_TEST_MONGO_URL", "mongodb://127.0.0.1:27027/")
    monkeypatch.delenv("IPSFLOW_TEST_MANAGEMENT_URL", raising=False)
    monkeypatch.setenv("IPSFLOW_RABBITMQ_MANAGEMENT_PORT", "15682")
    assert discover().management_url == "http://guest:guest@127.0.0.1:15682"
    monkeypatch.setenv("IPSFLOW_TEST_MANAGEMENT_URL", "http://guest:guest@broker:15672")
    assert discover().management_url == "http://guest:guest@broker:15672"
