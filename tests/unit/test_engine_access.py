"""Who may see a case and its user tasks in the process engine's API (pure rules, no HTTP)."""

from __future__ import annotations

from process_engine.api import belongs_to_caller, may_see
from servicekit.auth import Principal

CASE = {"aanvraag": {"gemeenteCode": "0957", "ggzKvkNummer": "12345678"}, "gemeenteCode": "0957",
        "ggzKvkNummer": "12345678"}
TASK = {"lane": "Behandelaar"}


def principal(org_type: str, org: str, *roles: str) -> Principal:
    return Principal(f"{org_type}-user", org_type, org, frozenset(roles))


def test_the_gemeente_official_of_the_case_sees_its_task():
    assert may_see(principal("gemeente", "0957", "behandelaar"), TASK, CASE)


def test_another_gemeente_or_a_missing_role_does_not():
    assert not may_see(principal("gemeente", "0988", "behandelaar"), TASK, CASE)
    assert not may_see(principal("gemeente", "0957"), TASK, CASE)


def test_a_ggz_with_the_lane_role_still_cannot_decide_its_own_application():
    assert not may_see(principal("ggz", "12345678", "behandelaar"), TASK, CASE)


def test_case_visibility_is_denied_by_default():
    assert belongs_to_caller(principal("beheer", "ipsflow"), CASE)
    assert belongs_to_caller(principal("ggz", "12345678"), CASE)
    assert not belongs_to_caller(principal("ggz", "87654321"), CASE)
    assert not belongs_to_caller(principal("uwv", "UWV", "budgetbeheerder"), CASE)
    assert not belongs_to_caller(principal("gemeente", "0957"), {"iets": 1})  # a case naming no gemeente


UWV_CASE = {**CASE, "besluitvormer": "uwv"}  # ips-cmd-2019: the diagram sets it from grants' toetsing
UWV_TASK = {"lane": "UWV-behandelaar"}


def test_uwv_sees_and_works_on_only_the_cases_it_decides():
    uwv = principal("uwv", "UWV", "uwv-behandelaar")
    assert belongs_to_caller(uwv, UWV_CASE) and may_see(uwv, UWV_TASK, UWV_CASE)
    assert not belongs_to_caller(uwv, CASE)  # a case the gemeente decides
    assert not belongs_to_caller(uwv, {**CASE, "toetsing": {"besluitvormer": "uwv"}})  # only the diagram's own
    assert not may_see(principal("uwv", "UWV", "budgetbeheerder"), UWV_TASK, UWV_CASE)  # the lane's role


def test_a_gemeente_official_cannot_work_on_the_uwv_decision_even_with_the_role():
    assert not may_see(principal("gemeente", "0957", "behandelaar", "uwv-behandelaar"), UWV_TASK, UWV_CASE)
    assert may_see(principal("gemeente", "0957", "behandelaar"), TASK, UWV_CASE)  # its consent task
