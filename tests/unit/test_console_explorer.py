"""The console's case explorer filters (services/console/explorer.py): read from a query string, matched on the
variables functioneel beheer may see, and the CSV export. Pure logic; the pages are tested on the real stack in
tests/integration/test_console.py."""

from __future__ import annotations

import csv
import io
import urllib.parse

import pytest

from console.explorer import Filters, Voorwaarde, csv_regels, voldoet, zoek

pytestmark = pytest.mark.unit

ZAAK = {"id": "z1", "status": "running", "processId": "ips_traject", "definitieHash": "a" * 64,
        "actieveElementen": ["UserTask_beoordelen"], "openIncidenten": 0, "gestartOp": "2026-03-02T08:00:00Z",
        "variabelen": {"gemeenteCode": "0957", "te_laat": False, "beslisdatum": "2026-05-01",
                       "aanvraag": {"ggzKvkNummer": "41178211", "trajectType": "CMD",
                                    "ontvangenOp": "2026-03-02T09:00:00+01:00"},
                       "toetsing": {"regeling": "ips-2024"}, "afwijzingsgronden": ["geen certificaat"]}}


def _filters(query: str) -> Filters:
    parsed = urllib.parse.parse_qs(query)
    return Filters.uit_query({k: v[0] for k, v in parsed.items()}, parsed)


def test_lookup_by_path_and_one_level_down() -> None:
    v = ZAAK["variabelen"]
    assert zoek(v, "gemeenteCode") == "0957"
    assert zoek(v, "ggzKvkNummer") == "41178211"  # inside the message variable
    assert zoek(v, "aanvraag.trajectType") == "CMD"
    assert zoek(v, "aanvraag.bestaatniet", None) is None


@pytest.mark.parametrize(("query", "matches"), [
    ("gemeente=0957", True), ("gemeente=0988", False), ("ggz=41178211", True), ("regeling=ips-2024", True),
    ("regeling=ips-2019", False), ("ontvangen_van=2026-03-02&ontvangen_tot=2026-03-02", True),
    ("ontvangen_van=2026-03-03", False), ("te_laat=nee", True), ("te_laat=ja", False),
    ("vnaam=aanvraag.trajectType&vop=gelijk&vwaarde=CMD", True),
    ("vnaam=aanvraag.trajectType&vop=gelijk&vwaarde=CM", False),
    ("vnaam=aanvraag.trajectType&vop=bevat&vwaarde=CM", True),
    ("vnaam=afwijzingsgronden&vop=bevat&vwaarde=certificaat", True),
    ("vnaam=toetsing&vop=bestaat", True), ("vnaam=besluit&vop=bestaat", False),
    # AND: one false condition is enough to exclude the case
    ("vnaam=toetsing&vop=bestaat&vnaam=aanvraag.trajectType&vop=gelijk&vwaarde=EPA", False),
])
def test_filters_match_on_the_visible_variables(query: str, matches: bool) -> None:
    f = _filters(query)
    assert f.fouten == []
    assert f.past(ZAAK) is matches


def test_bad_input_is_reported_and_ignored() -> None:
    f = _filters("ontvangen_van=morgen&incident=misschien&vnaam=__import__('os')&vop=gelijk&vwaarde=x")
    assert f.ontvangen_van == "" and f.incident == "" and f.voorwaarden == []
    assert len(f.fouten) == 3


def test_query_string_round_trips_and_engine_filters() -> None:
    f = _filters("proces=ips_traject&incident=ja&vnaam=aanvraag.trajectType&vop=gelijk&vwaarde=CMD")
    assert _filters(f.query()).voorwaarden == [Voorwaarde("aanvraag.trajectType", "gelijk", "CMD")]
    assert f.engine_filters() == {"processId": "ips_traject", "definitieHash": None, "status": None,
                                  "element": None, "incident": "true", "gemeente": None, "ggz": None,
                                  "regeling": None, "ontvangenVan": None, "ontvangenTot": None, "teLaat": None,
                                  "voorwaarde": ['["aanvraag.trajectType", "gelijk", "CMD"]']}
    assert "pagina=2" in f.query(pagina=2)


def test_exists_ignores_a_value_and_missing_never_matches() -> None:
    assert voldoet({"a": None}, Voorwaarde("a", "bestaat"))
    assert not voldoet({}, Voorwaarde("a", "gelijk", ""))


def test_csv_has_every_row_and_neutralises_formulas() -> None:
    evil = {**ZAAK, "id": "=HYPERLINK(\"http://x\")", "variabelen": {"gemeenteCode": "+31"}}
    rows = list(csv.reader(io.StringIO(csv_regels([ZAAK, evil], {"a" * 64: "ips_traject v1"})), delimiter=";"))
    assert len(rows) == 3 and rows[1][0] == "z1" and rows[1][3] == "ips_traject v1" and rows[1][7] == "0957"
    assert rows[2][0].startswith("'=") and rows[2][7] == "'+31"
