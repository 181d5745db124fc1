"""Who may see a case and its tasks, and what they see of it (deny by default; the work lists in ``readmodels`` are
built by the same rules), and which case variables functioneel beheer may set before a retry."""

from __future__ import annotations

import json
from typing import Any

from process_engine import readmodels
from process_engine import runtime as rt
from process_engine.readmodels import BESLUITVORMER, LANE_ORGANISATIONS, ORGANISATION_VARIABLES
from servicekit.auth import Principal
from servicekit.logging import PERSONAL_DATA_KEYS
from servicekit.zaakvariabelen import bewerkbare_variabelen, zichtbare_variabelen

# Who a case and its tasks belong to (readmodels: the work lists are built by the same rules): the organisation
# variables, the organisation type of a lane, and the case variable the diagram sets to "uwv" when UWV decides
# the case (ips-cmd-2019, from grants' toetsing): only then may a UWV official see it.
_variable = readmodels.variable


def may_see(principal: Principal, task: dict[str, Any], variables: dict[str, Any]) -> bool:
    """A user task is for callers with the role named by its lane, of the lane's organisation type, of the
    organisation the case belongs to."""
    if principal.org_type == "beheer":
        return True
    lane = (task.get("lane") or "").lower()
    if lane and not principal.has_role(lane):
        return False
    if lane in LANE_ORGANISATIONS and principal.org_type != LANE_ORGANISATIONS[lane]:
        return False
    return belongs_to_caller(principal, variables)


def belongs_to_caller(principal: Principal, variables: dict[str, Any]) -> bool:
    """Whether the caller may see this case at all. Deny by default: beheer sees every case; a gemeente or a
    ggz only a case that names it (``gemeenteCode`` / ``ggzKvkNummer``); UWV only a case it decides itself
    (``besluitvormer`` "uwv": ips-cmd-2019); anyone else none, since a case's variables say more than UWV needs
    otherwise (its budget and payment views are in grants and payments)."""
    if principal.org_type == "beheer":
        return True
    if principal.org_type == "uwv":  # set by the diagram's own script, never taken from a message
        return variables.get(BESLUITVORMER) == "uwv"
    scope = ORGANISATION_VARIABLES.get(principal.org_type)
    owner = _variable(variables, scope) if scope else None
    return owner is not None and str(owner) == principal.org


#: At most this much JSON per variable edit: a correction of a few facts, not a new case.
MAX_VARIABELEN_BYTES = 20_000


def variable_problems(process_id: str, variables: dict[str, Any]) -> list[dict[str, str]]:
    """Why these variables may not be set before a retry (empty: they may): only the allow-listed names
    (``bewerkbare_variabelen``), no key that names personal data at any depth, no text with a BSN-like number,
    and small. The values are never quoted back."""
    allowed = bewerkbare_variabelen(process_id)
    out = [{"name": name, "code": "not_allowed", "reason": "deze variabele mag functioneel beheer niet wijzigen"}
           for name in variables if name not in allowed]

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if str(key).lower() in PERSONAL_DATA_KEYS:
                    out.append({"name": f"{path}.{key}", "code": "personal_data", "reason": "persoonsgegevens"})
                else:
                    walk(inner, f"{path}.{key}")
        elif isinstance(value, list):
            for i, inner in enumerate(value):
                walk(inner, f"{path}[{i}]")

    for name, value in variables.items():
        walk(value, name)
    out += [{"name": p.field, "code": p.code, "reason": p.message} for p in rt.free_text_problems(variables)]
    if len(json.dumps(variables, default=str)) > MAX_VARIABELEN_BYTES:
        out.append({"name": "variabelen", "code": "too_large", "reason": f"meer dan {MAX_VARIABELEN_BYTES} tekens"})
    return out


def case_view(doc: dict[str, Any], principal: Principal) -> dict[str, Any]:
    """A case as its caller may see it: the variables are an explicit allow-list per organisation type
    (``servicekit.zaakvariabelen``), never "everything but the known personal keys"."""
    return {
        "id": doc["_id"], "status": doc["status"], "processId": doc["process_id"],
        "definitieHash": doc["definition_hash"], "actieveElementen": doc.get("active_elements", []),
        "wachtOpBerichten": doc.get("waiting_messages", []), "volgendeTimer": doc.get("next_timer_at"),
        "taken": [task_view(doc, t) for t in doc.get("user_tasks", [])],
        "incidenten": doc.get("incidents", []),
        "variabelen": zichtbare_variabelen(doc["process_id"], principal.org_type, doc.get("variables", {})),
        "geschiedenis": doc.get("history", []), "journaal": doc.get("journal", []),
        "bewaardeBerichten": [k["name"] for k in doc.get("kept", [])],
    }


def task_view(doc: dict[str, Any], t: dict[str, Any], with_form: bool = False) -> dict[str, Any]:
    # what a work list sorts on: the receipt and the decision deadline (dates, no personal data)
    view = readmodels.task_entry(doc, t)
    if with_form:
        view["formulier"] = t.get("formSchema")
    return view
