"""The engine's side of the studio (process_engine/studio.py) as pure functions: the catalogue read as data, the
checks a deploy from the studio must pass, the element comparison and the cases it concerns."""

from __future__ import annotations

from pathlib import Path

from process_engine.bootstrap import load_catalogue
from process_engine.studio import betrokken_zaken, catalogus, controleer, elementen, vergelijk

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = str(ROOT / "bpmn" / "README.md")
ROLLEN = {"behandelaar", "ggz-instelling", "uwv", "uwv-behandelaar"}


def _files(bpmn: str | None = None) -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in (ROOT / "bpmn").iterdir() if p.suffix in (".bpmn", ".dmn")}
    if bpmn is not None:
        files["ips_traject.bpmn"] = bpmn.encode()
    return files


def _check(bpmn: str | None = None) -> list[tuple[str | None, str]]:
    gegevens = catalogus(CATALOGUE)
    found = controleer(_files(bpmn), load_catalogue(CATALOGUE), {c["type"] for c in gegevens["commandos"]}, ROLLEN)
    return [(p.element, p.regel) for p in found]


def test_the_catalogue_as_data_commands_with_parameters_and_result_events_without_admin_commands() -> None:
    gegevens = catalogus(CATALOGUE)
    commandos = {c["type"]: c for c in gegevens["commandos"]}
    toetsen = commandos["ips.aanvraag.toetsen.v1"]
    assert toetsen["door"] == "grants" and toetsen["resultaat"] == "toetsing"
    assert toetsen["parameters"] == ["aanvraag_id", "gemeente_code", "woongemeente_code", "traject_type",
                                     "aanvraagdatum", "ontvangen_op", "ggz_kvk_nummer"]
    # explanations in parentheses and "and" are not parameter names
    assert commandos["ips.aanvraag.volledigheid_controleren.v1"]["parameters"] == [
        "aanvraag_id", "beslisdatum", "opgeschorte_dagen"]
    assert commandos["ips.budget.vrijgeven.v1"]["resultaat"] is None
    assert "ips.aanvraag.ingediend.v1" in {g["type"] for g in gegevens["gebeurtenissen"]}
    assert "ips.klok.zetten.v1" not in commandos  # an admin command is never in a diagram
    assert set(commandos) | {g["type"] for g in gegevens["gebeurtenissen"]} == load_catalogue(CATALOGUE)


def test_the_diagram_in_git_passes_every_check() -> None:
    assert _check() == []


def test_checks_refuse_an_uncatalogued_command_a_lane_without_a_role_and_a_sandbox_violation() -> None:
    xml = (ROOT / "bpmn" / "ips_traject.bpmn").read_text()
    assert ("ServiceTask_toetsen", "catalogus") in _check(xml.replace('id="ips.aanvraag.toetsen.v1"',
                                                                      'id="ips.iets.anders.v1"'))
    assert ("UserTask_beoordelen", "rol") in _check(xml.replace('name="Behandelaar"', 'name="Iedereen"'))
    script = 'gemeenteCode = aanvraag["gemeenteCode"]'
    assert ("ScriptTask_zaakgegevens", "sandbox") in _check(xml.replace(script, "import os\n" + script, 1))


def test_comparison_ignores_layout_and_default_attributes_and_sees_content_and_connections() -> None:
    xml = (ROOT / "bpmn" / "ips_traject.bpmn").read_text()
    oud = elementen(_files())
    moved = xml.replace('<dc:Bounds x="330" y="400" width="100" height="80" />',
                        '<dc:Bounds x="340" y="420" width="100" height="80" />')
    defaults = xml.replace('name="Hersteltermijn verstreken" cancelActivity="true"', 'name="Hersteltermijn verstreken"')
    assert vergelijk(oud, elementen(_files(moved))).view() == {"toegevoegd": [], "verwijderd": [], "gewijzigd": []}
    assert defaults != xml and vergelijk(oud, elementen(_files(defaults))).gewijzigd == {}
    renamed = xml.replace('name="Zaakgegevens vastleggen"', 'name="Zaak vastleggen"')
    assert vergelijk(oud, elementen(_files(renamed))).gewijzigd == {"ScriptTask_zaakgegevens": ["inhoud"]}
    # a task moved to another lane changed (who does it); the lanes themselves did not
    lane_move = xml.replace("<bpmn:flowNodeRef>UserTask_beoordelen</bpmn:flowNodeRef>", "", 1).replace(
        "<bpmn:flowNodeRef>ReceiveTask_aanvulling</bpmn:flowNodeRef>",
        "<bpmn:flowNodeRef>ReceiveTask_aanvulling</bpmn:flowNodeRef><bpmn:flowNodeRef>UserTask_beoordelen"
        "</bpmn:flowNodeRef>", 1)
    assert vergelijk(oud, elementen(_files(lane_move))).gewijzigd == {"UserTask_beoordelen": ["inhoud"]}


def test_affected_cases_are_those_waiting_in_a_removed_or_changed_element_of_their_own_version() -> None:
    oud = {"A": ("userTask", b"a", b""), "B": ("serviceTask", b"b", b"in"), "C": ("scriptTask", b"c", b"")}
    nieuw = {"A": ("userTask", b"a", b""), "B": ("serviceTask", b"b", b"other"), "D": ("task", b"d", b"")}
    verschil = vergelijk(oud, nieuw)
    assert verschil.view() == {"toegevoegd": ["D"], "verwijderd": ["C"],
                               "gewijzigd": [{"element": "B", "wat": ["verbindingen"]}]}
    zaken = [{"_id": "z1", "definition_hash": "h1", "active_elements": ["A"]},
             {"_id": "z2", "definition_hash": "h1", "active_elements": ["B"]},
             {"_id": "z3", "definition_hash": "h1", "active_elements": ["C", "A"]},
             {"_id": "z4", "definition_hash": "h0", "active_elements": ["C"]}]  # a version not compared: left out
    assert betrokken_zaken(zaken, {"h1": verschil}, {"h1": 3}) == [
        {"zaak": "z2", "definitieHash": "h1", "versie": 3,
         "elementen": [{"element": "B", "reden": "gewijzigd: verbindingen"}]},
        {"zaak": "z3", "definitieHash": "h1", "versie": 3, "elementen": [{"element": "C", "reden": "verwijderd"}]}]
