"""The engine's in-memory case index (process_engine/zaakindex.py): the same matches as the console's rules, newest
first, and a write of the engine process seen at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from servicekit.zaakindex import Criteria, ZaakIndex, past, samenvatting, voorwaarden

VELDEN = dict.fromkeys(["processId", "definitieHash", "status", "element", "incident"])


def _doc(i: int, gemeente: str, ontvangen: str, status: str = "running", incident: bool = False) -> dict[str, Any]:
    return {"_id": f"zaak-{i}", "status": status, "process_id": "ips_traject", "definition_hash": "h1",
            "active_elements": ["Task_toetsen"], "started_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=i),
            "incidents": [{"commandId": "c", "resolved": False}] if incident else [],
            "variables": {"gemeenteCode": gemeente, "bsn": "123456782", "te_laat": i % 2 == 0,
                          "aanvraag": {"ggzKvkNummer": "41178211", "ontvangenOp": ontvangen, "trajectType": "CMD"}}}


@pytest.fixture
def index() -> ZaakIndex:
    found = ZaakIndex()
    for i in range(40):
        found.bij(_doc(i, "0957" if i % 4 else "0988", f"2026-0{1 + i % 3}-1{i % 10}T09:00:00+01:00",
                       status="completed" if i % 5 == 0 else "running", incident=i % 7 == 0))
    return found


@pytest.mark.parametrize("criteria, velden", [
    (Criteria(gemeente="0988"), {}),
    (Criteria(gemeente="0957", ggz="41178211"), {"status": "running"}),
    (Criteria(ontvangen_van="2026-02-01", ontvangen_tot="2026-02-28", te_laat=True), {}),
    (Criteria(voorwaarden=(("aanvraag.ontvangenOp", "bevat", "2026-03"), ("gemeenteCode", "bestaat", ""))),
     {"incident": False}),
    (Criteria(regeling="x"), {}),
    (Criteria(), {"element": "Task_toetsen", "incident": True}),
])
def test_the_index_finds_what_the_rules_match_newest_first(index: ZaakIndex, criteria: Criteria,
                                                           velden: dict[str, Any]) -> None:
    asked = {**VELDEN, **velden}
    expected = [z for z in sorted(index.zaken.values(), key=lambda z: z["gestartOp"], reverse=True)
                if past(z, asked, criteria)]
    total, page = index.zoek(asked, criteria, 2, 5)
    assert total == len(expected) and [z["id"] for z in page] == [z["id"] for z in expected[2:7]]


def test_a_write_is_seen_at_once_and_no_personal_data_is_kept(index: ZaakIndex) -> None:
    assert index.zoek(VELDEN, Criteria(gemeente="0344"), 0, 10) == (0, [])
    index.bij(_doc(3, "0344", "2026-01-13T09:00:00+01:00"))  # zaak-3 moved to another gemeente
    total, [zaak] = index.zoek(VELDEN, Criteria(gemeente="0344"), 0, 10)
    assert total == 1 and zaak["id"] == "zaak-3"
    assert "zaak-3" not in [z["id"] for z in index.zoek(VELDEN, Criteria(gemeente="0957"), 0, 100)[1]]
    assert "bsn" not in zaak["variabelen"] and "bsn" not in samenvatting(_doc(1, "0957", ""))["variabelen"]


def test_conditions_are_checked() -> None:
    assert voorwaarden(['["aanvraag.trajectType", "gelijk", "CMD"]']) == (("aanvraag.trajectType", "gelijk", "CMD"),)
    for bad in ('["os.system(1)", "gelijk", "x"]', '["a", "regex", "x"]', "geen json", '["a", "gelijk"]'):
        with pytest.raises(ValueError):
            voorwaarden([bad])
