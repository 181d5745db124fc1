"""Which case variables the case API shows, per process and organisation type: an explicit allow-list.

A variable is shown only when it is listed here for the caller's organisation type; everything else (a variable a
new diagram version adds, a key a service's reply merges into the task data, free text of the official) stays
inside the engine until someone decides who may read it. A process without an entry shows no variables at all.

``tests/unit/test_case_variables.py`` reads ``bpmn/ips_traject.bpmn`` and fails when the diagram sets a variable
that is neither allowed for some organisation type nor listed in ``INTERN``, so a new variable cannot leak
(or vanish) silently.

In servicekit because the console offers the editable variables in its incident forms (services import only
servicekit, never each other: tests/unit/test_layering.py); the engine enforces the lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: What the ggz-instelling (the applicant) may read about its own case: what it sent, the deadlines and the
#: state of its trajectory, and the decisions as they were sent to it. Not the official's working data before
#: a decision goes out (besluit, motivering, gronden, ondertekenaar), nor the budget and UWV bookkeeping.
_GGZ = frozenset({
    # messages the ggz itself sent (intake's events: ids, codes, dates; no personal data)
    "aanvraag", "aanvulling", "verlengingsverzoek", "stopbericht", "eindverslag",
    # who the case belongs to
    "gemeenteCode", "ggzKvkNummer",
    # deadlines and what is missing
    "beslisdatum", "opgeschorte_dagen", "te_laat", "volledigheid", "herstelverzoek", "doorzending",
    # who decides (ips-cmd-2019: UWV) and the gemeente's consent statement it decides with
    "besluitvormer", "instemmingGemeente",
    # the trajectory (DMN) and its dates
    "tarief_cents", "looptijd_maanden", "startdatum", "einddatum", "verlengingen", "werkelijke_einddatum",
    # decisions, letters and money as sent to the ggz
    "beschikking", "bericht", "vaststelling", "betaling", "verrekening",
})

#: The gemeente's official decides the case and sees all of it: the assessment, the budget reservation, the
#: draft decision and who signed.
_GEMEENTE = _GGZ | frozenset({
    "toetsing", "reservering", "vergoeding", "afwijzingsgronden", "besluit", "motivering", "nieuweBeslisdatum",
    "ondertekenaar", "verlengingstoets", "verlengingsgronden", "stopmelding",
    # the form of the consent statement (UserTask_instemming), kept in instemmingGemeente
    "instemming", "instemmingKenmerk", "instemmingDatum",
})

#: UWV decides an ips-cmd-2019 case (the engine lets it see only those: ``besluitvormer`` "uwv") and sees what
#: its decisions need: the application's facts, the deadlines, the consent, the reservation and its own decision;
#: it also decides the extension (grants' check and its grounds) and the vaststelling (the stopbericht it got).
_UWV_BESLISSER = _GGZ | frozenset({
    "toetsing", "reservering", "vergoeding", "afwijzingsgronden", "besluit", "motivering", "nieuweBeslisdatum",
    "ondertekenaar", "instemming", "instemmingKenmerk", "instemmingDatum",
    "verlengingstoets", "verlengingsgronden", "stopmelding",
})

ZICHTBAAR: Mapping[str, Mapping[str, frozenset[str]]] = {
    "ips_traject": {
        "ggz": _GGZ,
        "gemeente": _GEMEENTE,
        # UWV sees only a case it decides (ips-cmd-2019); else its views are the budgets in grants and the
        # payments in payments.
        "uwv": _UWV_BESLISSER,
        # Functioneel beheer resolves incidents and needs the whole process state the gemeente sees.
        "beheer": _GEMEENTE,
    },
}

#: Variables the diagram sets for its own bookkeeping and that no API shows.
INTERN: Mapping[str, frozenset[str]] = {
    "ips_traject": frozenset({"vorigeGemeente"}),  # the forwarding gemeente, only for the doorzending notice
}
#: What the engine itself keeps in every case's data (``runtime._CASE_ID_KEY``); never shown either.
ENGINE_INTERN = frozenset({"ips:case_id"})


def zichtbare_variabelen(process_id: str, org_type: str, variables: Mapping[str, Any]) -> dict[str, Any]:
    """The case variables a caller of ``org_type`` may read, for a case of ``process_id``."""
    allowed = ZICHTBAAR.get(process_id, {}).get(org_type, frozenset())
    if org_type == "uwv" and variables.get("besluitvormer") != "uwv":
        return {}  # a case the gemeente decides shows UWV nothing
    return {name: value for name, value in variables.items() if name in allowed}


#: What functioneel beheer may change in a case before it retries an incident (console, issue 15): the facts a
#: command's parameters are built from and that a wrong upstream value can break (a gemeente code, a KvK number,
#: the application's own ids and dates, the trajectory's figures and dates). Never the decision, its grounds or
#: who signed it: those are the official's, and a correction there is a new decision, not a retry.
BEWERKBAAR: Mapping[str, frozenset[str]] = {
    "ips_traject": frozenset({
        "aanvraag", "gemeenteCode", "ggzKvkNummer", "beslisdatum", "opgeschorte_dagen", "tarief_cents",
        "looptijd_maanden", "startdatum", "einddatum",
    }),
}


def bewerkbare_variabelen(process_id: str) -> frozenset[str]:
    """The case variables functioneel beheer may set before a retry, for a case of ``process_id``."""
    return BEWERKBAAR.get(process_id, frozenset()) & ZICHTBAAR.get(process_id, {}).get("beheer", frozenset())
