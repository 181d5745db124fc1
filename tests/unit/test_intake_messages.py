"""Command parameters as the engine sends them (snake_case, extra keys such as elementId ignored)."""

from __future__ import annotations

import pydantic
import pytest

from intake.domain import UITKERINGEN
from intake.messages import BesluitRegistrerenParams, Doelgroep, DoorzendenParams, HerstelVragenParams


@pytest.mark.parametrize("status", [None, "None", ""])
def test_besluit_without_status_keeps_it(status):
    params = BesluitRegistrerenParams.model_validate({"aanvraag_id": "a", "status": status, "beschikking": {},
                                                      "elementId": "Task_1", "attempt": 1})
    assert params.status is None


def test_bad_parameters_fail_validation():
    with pytest.raises(pydantic.ValidationError):
        BesluitRegistrerenParams.model_validate({"aanvraag_id": "a", "status": "misschien", "beschikking": {}})
    with pytest.raises(pydantic.ValidationError):
        HerstelVragenParams.model_validate({"aanvraag_id": "a", "hersteltermijn": "twee weken"})
    with pytest.raises(pydantic.ValidationError):
        DoorzendenParams.model_validate({"aanvraag_id": "a", "naar_gemeente_code": "GM0988"})


@pytest.mark.parametrize("uitkering", UITKERINGEN)
def test_every_benefit_is_accepted_also_outside_the_target_group(uitkering):
    doelgroep = Doelgroep.model_validate({"uitkering": uitkering, "wilBetaaldWerk": True, "andereReintegratie": False})
    assert doelgroep.uitkering == uitkering


@pytest.mark.parametrize("uitkering", ["zw", "WW", "", "bijstand,ww"])
def test_an_unknown_benefit_is_refused(uitkering):
    with pytest.raises(pydantic.ValidationError):
        Doelgroep.model_validate({"uitkering": uitkering, "wilBetaaldWerk": True, "andereReintegratie": False})
