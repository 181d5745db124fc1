"""Metrics and traces on the real stack (issue 17, item 5): one case submitted over HTTP, every service a process.

* ``/metrics`` answers without a token on each service, and its counters move: intake's HTTP route and the
  commands it handled, the case the engine started and the events it handled and published (with the relay's lag),
  grants' commands. No label value holds the case id or the BSN: routes are templates.
* The ``traceparent`` sent with the submission is the trace of the whole case: every event and command of the case
  (intake, engine, grants, payments, notifications) carries its trace id, also after the official's decision,
  which came in over HTTP in a trace of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

# The fixture ``tap`` (a queue on both exchanges that keeps every message), imported under another name.
from tests.integration.test_vrije_tekst import tap as tap_fixture  # noqa: F401
from tests.support.ips import ROERMOND, application, ggz, official, start_ips

pytestmark = pytest.mark.timeout(300)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
DECIDER = ("toekenning", "afwijzing", "verdaging", "niet_behandelen")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _metrics(client: httpx.AsyncClient, url: str) -> tuple[Samples, str]:
    response = await client.get(f"{url}/metrics")  # no token: like /health
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for family in text_string_to_metric_families(response.text) for s in family.samples}
    return found, response.text


def _total(samples: Samples, name: str, **labels: str) -> float:
    return sum(value for (n, lbls), value in samples.items()
               if n == name and all(dict(lbls).get(k) == v for k, v in labels.items()))


def _label_values(samples: Iterable[tuple[str, tuple[tuple[str, str], ...]]]) -> set[str]:
    return {value for _name, labels in samples for _key, value in labels}


async def test_a_case_moves_the_counters_and_is_one_trace(service, tap_fixture) -> None:  # noqa: F811
    ips = start_ips(service)
    client = ips.client
    before = {name: (await _metrics(client, url))[0] for name, url in ips.urls().items()}

    body = application()
    response = await client.post(f"{ips.intake}/api/v1/aanvragen", json=body,
                                 headers={**ggz(), "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"})
    assert response.status_code == 201, response.text
    assert response.headers["X-Trace-Id"] == TRACE_ID
    case_id = response.json()["id"]

    task = await ips.wait_task(case_id, official(ROERMOND, DECIDER))
    # The decision comes in over HTTP in another trace; the case's commands stay in the case's trace.
    decided = await client.post(f"{ips.engine}/api/v1/taken/{task['id']}/afronden",
                                json={"gegevens": {"besluit": "toekennen", "motivering": "Akkoord."}},
                                headers={**official(ROERMOND, DECIDER),
                                         "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    assert decided.status_code == 200, decided.text
    assert decided.headers["X-Trace-Id"] == "0af7651916cd43dd8448eb211c80319c"
    await ips.wait_case(case_id, lambda c: c["actieveElementen"] == ["ReceiveTask_traject"], "a running trajectory")

    after = {name: await _metrics(client, url) for name, url in ips.urls().items()}
    moved = {name: {key: value - before[name].get(key, 0.0) for key, value in found.items()
                    if value != before[name].get(key, 0.0)} for name, (found, _text) in after.items()}

    intake, engine, grants = moved["intake"], moved["process_engine"], moved["grants"]
    assert _total(intake, "ipsflow_http_request_duration_seconds_count", method="POST",
                  route="/api/v1/aanvragen", status="201") == 1
    assert _total(intake, "ipsflow_messages_handled_total", queue="intake") >= 2  # volledigheid, besluit, ...
    assert _total(intake, "ipsflow_outbox_published_total") >= 1
    assert _total(engine, "ipsflow_cases_started_total", process="ips_traject") == 1
    assert _total(engine, "ipsflow_messages_handled_total") >= 5
    assert _total(engine, "ipsflow_message_handler_seconds_count") >= 5
    assert _total(engine, "ipsflow_outbox_published_total") >= 5
    assert _total(engine, "ipsflow_relay_lag_seconds_count") >= 1
    assert _total(engine, "ipsflow_http_request_duration_seconds_count",
                  route="/api/v1/taken/{task_id}/afronden", status="200") == 1
    assert _total(grants, "ipsflow_messages_handled_total", queue="grants") >= 2  # toetsen, reserveren, ...
    assert not _total(engine, "ipsflow_incidents_total")

    # Labels hold types, queues and route templates: never the case id (which is in the URLs) or the BSN.
    for name, (found, text) in after.items():
        values = _label_values(found)
        assert not [v for v in values if case_id in v or body["bsn"] in v or task["id"] in v], name
        assert case_id not in text and body["bsn"] not in text, name

    # One trace: every message of the case, from every service, carries the submission's trace id.
    messages = {m["id"]: m for m in map(json.loads, tap_fixture.bodies)}  # a relay may publish a message twice
    of_case = [m for m in messages.values() if m.get("subject") == case_id]
    sources = {m["source"].rsplit("ipsflow-", 1)[-1] for m in of_case}
    assert {"intake", "process_engine", "grants"} <= sources, sources
    untraced = [(m["type"], m.get("traceparent")) for m in of_case
                if (m.get("traceparent") or "").split("-")[1:2] != [TRACE_ID]]
    assert not untraced, untraced
    spans = [m["traceparent"].split("-")[2] for m in of_case]
    assert len(set(spans)) == len(spans), "each message is a hop of its own (its own span id)"

