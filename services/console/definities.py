"""The definition view: per process version, how many cases are at each element now, have an open incident there,
and have completed it, as badges on the diagram and as a table (the same figures in words)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from lxml import etree

from console.bootstrap import Console
from console.web import Refused, SessionDep, render

_BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
#: Elements that have a place on the diagram a case can be at (not flows, lanes or definitions).
_GEEN_STAP = {"sequenceFlow", "messageFlow", "lane", "laneSet", "process", "collaboration", "participant",
              "definitions", "message", "error", "signal", "escalation", "dataObject", "dataObjectReference",
              "textAnnotation", "association", "extensionElements", "incoming", "outgoing", "documentation"}


def elementen(bpmn: str, proces: str) -> dict[str, str]:
    """The steps of ``proces`` in a BPMN file (id → name or kind), in document order."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    root = etree.fromstring(bpmn.encode(), parser)
    processen = [p for p in root.iter(f"{_BPMN}process") if not proces or p.get("id") == proces] or \
        list(root.iter(f"{_BPMN}process"))
    out: dict[str, str] = {}
    for p in processen:
        for node in p.iter():
            if not isinstance(node.tag, str) or not node.tag.startswith(_BPMN) or node.get("id") is None:
                continue
            soort = node.tag[len(_BPMN):]
            if soort not in _GEEN_STAP and not soort.endswith("EventDefinition"):
                out[node.get("id")] = node.get("name") or soort
    return out


def routes(app: FastAPI, console: Console) -> None:
    @app.get("/definities", include_in_schema=False)
    async def overzicht(request: Request, session: SessionDep) -> Response:
        definities = await console.backends.definities(session.token)
        tellingen = await asyncio.gather(*(console.backends.statistiek(session.token, d["hash"])
                                           for d in definities))
        rijen = [{**d, "zaken": t["zaken"]} for d, t in zip(definities, tellingen, strict=True)]
        return render(request, "definities.html", sessie=session, definities=rijen)

    @app.get("/definities/{content_hash}", include_in_schema=False)
    async def definitie(request: Request, content_hash: str, session: SessionDep) -> Response:
        definities = await console.backends.definities(session.token)
        gekozen = next((d for d in definities if d["hash"] == content_hash), None)
        if gekozen is None:
            raise Refused(404, "Geen procesdefinitie met deze hash.")
        detail, telling = await asyncio.gather(console.backends.definitie(session.token, content_hash),
                                               console.backends.statistiek(session.token, content_hash))
        bpmn = next((x for n, x in detail["bestanden"].items()
                     if n.endswith(".bpmn") and f'id="{gekozen["processId"]}"' in x), "")
        namen = elementen(bpmn, gekozen["processId"]) if bpmn else {}
        per_element: dict[str, Any] = telling["elementen"]
        rijen = [{"id": i, "naam": namen.get(i, i), **per_element.get(i, {"actief": 0, "incident": 0, "afgerond": 0})}
                 for i in [*namen, *sorted(set(per_element) - set(namen))]]
        versies = [d for d in definities if d["processId"] == gekozen["processId"]]
        return render(request, "definitie.html", sessie=session, d=gekozen, versies=versies, zaken=telling["zaken"],
                      tellingen=per_element, rijen=[r for r in rijen if r["actief"] or r["incident"] or r["afgerond"]],
                      stappen=len(rijen))
