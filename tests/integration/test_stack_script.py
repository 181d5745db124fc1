"""deploy/local/stack.sh judges RabbitMQ by an AMQP handshake, not by an open port: a node that accepts connections
but never answers (issue 18: `status` said "running" while every service hung) is reported with the command that
recovers it, and `up` refuses to go on."""

from __future__ import annotations

import os
import subprocess
import urllib.parse

import pytest

from tests.support.infra import ROOT
from tests.support.listeners import silent_listener
from tests.support.processes import free_port

STACK = str(ROOT / "deploy" / "local" / "stack.sh")


def _stack(action: str, tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    local = {"IPSFLOW_LOCAL_DIR": str(tmp_path)} if tmp_path else {}
    full_env = {**os.environ, **local, "IPSFLOW_AMQP_CHECK_SECONDS": "1", **env}
    return subprocess.run(["bash", STACK, action], env=full_env, capture_output=True, text=True, timeout=120)


def test_status_reports_a_node_that_accepts_but_never_answers_with_the_recovery_command(tmp_path):
    with silent_listener() as port:
        result = _stack("status", tmp_path, IPSFLOW_RABBITMQ_PORT=str(port),
                        IPSFLOW_FERRETDB_LISTEN=f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "RabbitMQ: NOT ANSWERING" in result.stdout
    assert f"127.0.0.1:{port} accepts connections but sent no AMQP reply" in result.stdout
    assert "ipsflow stack reset" in result.stdout


def test_status_reports_a_port_where_nothing_listens_as_not_running(tmp_path):
    result = _stack("status", tmp_path, IPSFLOW_RABBITMQ_PORT=str(free_port()),
                    IPSFLOW_FERRETDB_LISTEN=f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "RabbitMQ: not running" in result.stdout and "ipsflow stack up" in result.stdout


def test_up_stops_at_a_stuck_node_instead_of_starting_services_against_it(tmp_path):
    with silent_listener() as port:
        result = _stack("up", tmp_path, IPSFLOW_RABBITMQ_PORT=str(port),
                        IPSFLOW_FERRETDB_LISTEN=f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "ipsflow stack reset" in result.stderr
    assert not (tmp_path / "rabbitmq").exists(), "no node of ours was started on top of it"


def test_up_names_a_taken_management_port_instead_of_a_node_that_dies_at_boot(tmp_path):
    # Seen: a second stack's management port on the first one's Prometheus port; the node stopped at boot with an
    # Erlang crash dump, and `up` waited 90 s to say only that it did not answer.
    with silent_listener() as taken:
        result = _stack("up", tmp_path, IPSFLOW_RABBITMQ_PORT=str(free_port()),
                        IPSFLOW_RABBITMQ_MANAGEMENT_PORT=str(taken), IPSFLOW_RABBITMQ_NODENAME="porttest@localhost",
                        IPSFLOW_FERRETDB_LISTEN=f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert f"management port {taken}" in result.stderr and "IPSFLOW_RABBITMQ_MANAGEMENT_PORT" in result.stderr
    assert not (tmp_path / "rabbitmq" / "mnesia").exists(), "no node was started"


def test_the_broker_the_tests_use_answers_the_handshake(infra):
    if infra.kind != "local":
        pytest.skip("the local stack's script checks the local stack")
    amqp = urllib.parse.urlparse(infra.amqp_url)
    management = urllib.parse.urlparse(infra.management_url)
    mongo = urllib.parse.urlparse(infra.mongo_url)
    result = _stack("status", None, IPSFLOW_RABBITMQ_PORT=str(amqp.port),
                    IPSFLOW_RABBITMQ_MANAGEMENT_PORT=str(management.port), IPSFLOW_FERRETDB_LISTEN=mongo.netloc)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"RabbitMQ: answers AMQP on 127.0.0.1:{amqp.port}" in result.stdout


def test_a_second_checkout_reuses_the_first_ones_ferretdb_and_says_so(infra, tmp_path):
    """Two clones on one machine: the second's `up` finds a server on the port and no FerretDB log of its own
    (its .local is empty). It used to end with exit code 2 (grep of the missing log under set -e)."""
    urls = (infra.amqp_url, infra.management_url, infra.mongo_url)
    amqp, management, mongo = (urllib.parse.urlparse(u) for u in urls)
    result = _stack("up", tmp_path, IPSFLOW_RABBITMQ_PORT=str(amqp.port),
                    IPSFLOW_RABBITMQ_MANAGEMENT_PORT=str(management.port), IPSFLOW_FERRETDB_LISTEN=mongo.netloc)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not this checkout's: reused" in result.stdout
    assert not (tmp_path / "ferretdb").exists() or not any((tmp_path / "ferretdb").iterdir())
