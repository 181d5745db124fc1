"""The DMN table the process uses and the regulations grants enforces name the same tariffs and durations.

The DMN decides the amount the process reserves; grants refuses an amount that differs from its regulation
(IPS-TARIEF-001). This test keeps the two from drifting apart: it evaluates the DMN through the engine for
every regulation and trajectory type the configuration allows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from grants.regelingen import load_configs
from process_engine import runtime as rt
from process_engine.bootstrap import definition_files, load_catalogue

ROOT = Path(__file__).resolve().parents[2]
CASES = [(cfg.id, typ, cfg.tarieven[typ], cfg.looptijd_maanden[typ])
         for cfg in load_configs() for typ in cfg.trajecttypen]


def test_every_configured_regulation_and_type_is_covered():
    assert {(reg, typ) for reg, typ, _, _ in CASES} >= {("ips-cmd-2019", "CMD"), ("ips-gemeenten-2023", "CMD"),
                                                         ("ips-gemeenten-2023", "EPA")}


@pytest.mark.parametrize(("regeling", "traject_type", "cents", "months"), CASES)
def test_dmn_gives_the_regulations_tariff_and_duration(regeling, traject_type, cents, months):
    parsed = rt.parse_definition(definition_files(str(ROOT / "bpmn")), load_catalogue(str(ROOT / "bpmn" / "README.md")))
    aanvraag = {"aanvraagId": "a", "gemeenteCode": "0957", "woongemeenteCode": "0957", "trajectType": traject_type,
                "aanvraagdatum": "2026-03-02", "gewensteStartdatum": "2026-04-01", "ggzKvkNummer": "12345678",
                "ontvangenOp": "2026-03-02T09:00:00+00:00"}
    workflow, result = rt.start_instance(parsed, "ips.aanvraag.ingediend.v1", aanvraag, case_id="a")
    toetsing = {"regeling": regeling, "bevoegd": True, "bevoegdeGemeente": "0957", "beslisdatum": "2026-04-27",
                "hersteltermijn": "P14D"}
    result = rt.complete_command(workflow, result.commands[0].command_id, toetsing)
    volledig = {"volledig": True, "ontbrekend": [], "volledigOntvangenOp": "2026-03-02T09:00:00+00:00",
                "criteria": {}}
    result = rt.complete_command(workflow, result.commands[0].command_id, volledig)
    (reserve,) = result.commands
    assert reserve.command_type == "ips.budget.reserveren.v1"
    assert reserve.params["bedrag_cents"] == cents
    assert rt.case_variables(workflow)["looptijd_maanden"] == months
