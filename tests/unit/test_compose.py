"""deploy/compose.yml runs MongoDB as a three-member replica set that it initiates itself, and every service writes
to it with majority write concern and retryable writes (issue 17, item 4).

The file is parsed, not run: the machines that run the tests have no Docker engine. The settings it gives the
services are read by servicekit as a service would, and the client they build is checked (PyMongo's constructor
does not connect).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from servicekit.settings import ServiceSettings
from servicekit.store import make_client

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose.yml"
SERVICES = ("intake", "grants", "payments", "notifications", "process_engine", "console")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def _members(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if "--replSet" in (s.get("command") or [])}


def test_mongodb_is_a_replica_set_of_three_that_compose_initiates_itself(compose) -> None:
    members = _members(compose)
    assert len(members) == 3
    set_names = {m["command"][m["command"].index("--replSet") + 1] for m in members.values()}
    assert len(set_names) == 1
    (set_name,) = set_names
    volumes = [v.split(":")[0] for m in members.values() for v in m["volumes"]]
    assert len(set(volumes)) == 3 and set(volumes) <= set(compose["volumes"]), "each member its own data"
    assert all("healthcheck" in m for m in members.values())

    init = compose["services"]["mongo-init"]
    assert init["restart"] == "no"
    assert {name for name, c in init["depends_on"].items() if c["condition"] == "service_healthy"} == set(members)
    script = init["command"][-1]
    assert f'_id: "{set_name}"' in script
    hosts = set(re.findall(r'host: "([\w-]+):27017"', script))
    assert hosts == {m.get("hostname", name) for name, m in members.items()}
    # Idempotent: initiated only when the set is not (rs.status() fails with NotYetInitialized); then it waits
    # for a primary, and fails (so no service starts) when none is elected.
    guard, initiate = script.index('codeName !== "NotYetInitialized"'), script.index("rs.initiate(config)")
    assert script.index("rs.status()") < guard < initiate
    assert "quit(1)" in script[initiate:]


def test_every_service_waits_for_the_set_and_writes_majority_with_retries(compose) -> None:
    members = _members(compose)
    command = next(iter(members.values()))["command"]
    set_name = command[command.index("--replSet") + 1]
    for name in SERVICES:
        service = compose["services"][name]
        assert "profiles" not in service, f"{name} runs by default"
        assert service["depends_on"]["mongo-init"]["condition"] == "service_completed_successfully"
        env = service["environment"]
        hosts = env["IPSFLOW_MONGO_URL"].removeprefix("mongodb://").split("/")[0].split(",")
        assert {h.split(":")[0] for h in hosts} == {m.get("hostname", n) for n, m in members.items()}
        settings = ServiceSettings(service_name=name, mongo_url=env["IPSFLOW_MONGO_URL"],
                                   mongo_replica_set=env["IPSFLOW_MONGO_REPLICA_SET"],
                                   mongo_write_concern=env["IPSFLOW_MONGO_WRITE_CONCERN"],
                                   mongo_retry_writes=env["IPSFLOW_MONGO_RETRY_WRITES"])
        client = make_client(settings)
        assert client.options.replica_set_name == set_name
        assert client.write_concern.document == {"w": "majority"}
        assert client.options.retry_writes is True


def test_without_the_settings_the_client_keeps_mongodbs_defaults(monkeypatch) -> None:
    for var in ("IPSFLOW_MONGO_REPLICA_SET", "IPSFLOW_MONGO_WRITE_CONCERN", "IPSFLOW_MONGO_RETRY_WRITES"):
        monkeypatch.delenv(var, raising=False)
    client = make_client(ServiceSettings(service_name="intake"))
    assert client.options.replica_set_name is None
    assert client.write_concern.document == {}  # the server's default write concern
    assert client.options.retry_writes is True  # PyMongo's default
    # What the URL says stays in force when the settings are not given.
    from_url = make_client(ServiceSettings(mongo_url="mongodb://a:1,b:2/?replicaSet=x&w=2&retryWrites=false"))
    assert from_url.options.replica_set_name == "x" and from_url.write_concern.document == {"w": 2}
    assert from_url.options.retry_writes is False
    numbered = make_client(ServiceSettings(mongo_write_concern="2"))
    assert numbered.write_concern.document == {"w": 2}
