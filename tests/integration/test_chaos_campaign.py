"""Replicas under chaos, the broker and the database killed hard (issue 17): tests/support/chaos.py's campaigns.

Each campaign runs on a RabbitMQ node (or a 3-node cluster) and a FerretDB of its own, never the shared stack, and
removes them afterwards. The bounded one runs in ``make test``; the long ones carry the ``chaos`` marker, which
``make test`` deselects and ``make chaos`` runs.
"""

from __future__ import annotations

import os

import pytest

from tests.support.chaos import Campaign, campaign

# A plain `pytest` (without -m "not chaos") must not start an hour-long campaign either.
long_campaign = pytest.mark.skipif(os.environ.get("IPSFLOW_CHAOS") != "1", reason="make chaos runs this campaign")


def _holds(c: Campaign) -> None:
    outcome = campaign(c)
    assert not outcome.violations, outcome.report()
    # the campaign did what it says: replicas were killed, and the broker and FerretDB when asked
    kinds = " ".join(what for _, what in outcome.kills)
    assert "SIGKILL" in kinds, outcome.report()
    assert not c.broker_kill or "RabbitMQ" in kinds, outcome.report()
    assert not c.ferret_kill or "FerretDB" in kinds, outcome.report()


@pytest.mark.timeout(900)
def test_two_replicas_each_broker_and_ferretdb_killed_during_a_burst_lose_nothing_and_apply_nothing_twice():
    _holds(Campaign(cases=40, replicas=2, chaos_every=4.0, broker_kill=True, ferret_kill=True, timeout=480))


@pytest.mark.chaos
@long_campaign
@pytest.mark.timeout(4 * 3600)
def test_chaos_1000_cases_replicas_killed_broker_and_ferretdb_killed():
    cases = int(os.environ.get("IPSFLOW_CHAOS_CASES", "1000"))
    # a steady stream of cases, not one burst (Campaign.in_flight): the issue asks for 1,000 cases under chaos.
    # IPSFLOW_CHAOS_SUBMIT_SECONDS bounds the time cases are submitted in (a busy machine): the rest is checked alike
    _holds(Campaign(cases=cases, replicas=2, concurrency=20, chaos_every=4.0, broker_kill=True, ferret_kill=True,
                    down_seconds=5.0, timeout=3 * 3600, in_flight=int(os.environ.get("IPSFLOW_CHAOS_IN_FLIGHT", "50")),
                    submit_for=float(os.environ.get("IPSFLOW_CHAOS_SUBMIT_SECONDS", "0"))))


@pytest.mark.chaos
@long_campaign
@pytest.mark.timeout(2 * 3600)
def test_three_node_cluster_one_node_killed_during_a_burst_loses_nothing():
    cases = int(os.environ.get("IPSFLOW_CHAOS_CLUSTER_CASES", "300"))
    _holds(Campaign(cases=cases, replicas=2, concurrency=20, chaos_every=6.0, broker_kill=True, cluster=True,
                    down_seconds=20.0, timeout=3600))
