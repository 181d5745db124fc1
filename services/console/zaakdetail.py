"""What the case page adds to the engine's case: every command the case sent with its reply and the parked
messages that belong to it, and the case's beschikkingen (grants) and letters (notifications)."""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any

from console.backends import BackendError
from console.bootstrap import Console


def opdrachten(zaak: dict[str, Any], dode_brieven: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """The case's commands, oldest first, from its journal: sent (type, element, attempt), and the reply (done,
    failed into an incident with its error, caught by an error boundary) or none yet; with the parked messages
    that are this command (its message id) or its reply (causation id), linked to their parking lot."""
    rijen: dict[str, dict[str, Any]] = {}

    def rij(command: str) -> dict[str, Any]:
        return rijen.setdefault(command, {"id": command, "type": None, "element": None, "poging": None,
                                          "verstuurd": None, "antwoord": "nog geen antwoord", "soort": "wacht",
                                          "beantwoord": None, "geparkeerd": []})

    incidenten = {i.get("commandId"): i for i in zaak.get("incidenten", [])}
    for j in zaak.get("journaal", []):
        command = j.get("command")
        if not command:
            continue
        if j["what"] == "opdracht verstuurd":
            r = rij(command)
            r.update(type=j.get("type"), element=j.get("element"), poging=j.get("attempt"), verstuurd=j.get("at"))
        elif j["what"] == "opdracht voltooid":
            rij(command).update(antwoord="voltooid", soort="goed", beantwoord=j.get("at"))
        elif j["what"] == "incident":
            i = incidenten.get(command, {})
            fout = " ".join(filter(None, [i.get("errorCode") or j.get("code"), i.get("message")]))
            rij(command).update(antwoord=f"mislukt: {fout or 'onbekend'} (incident)", soort="fout",
                                beantwoord=j.get("at"), element=j.get("element") or i.get("elementId"))
        elif j["what"].startswith("fout afgehandeld"):
            rij(command).update(antwoord="mislukt, afgehandeld door de foutroute van het proces", soort="fout",
                                beantwoord=j.get("at"))
    for command, i in incidenten.items():  # a case from before the journal named its commands
        if command and command not in rijen:
            rij(command).update(type=i.get("commandType"), element=i.get("elementId"), poging=i.get("attempt"),
                                antwoord=f"mislukt: {i.get('errorCode') or ''} {i.get('message') or ''} (incident)",
                                soort="fout", beantwoord=i.get("at"))
        if command in rijen and not rijen[command]["type"]:
            rijen[command]["type"] = i.get("commandType")
    for d in dode_brieven:
        for command in (d.get("id"), d.get("causatie")):
            if command in rijen:
                rijen[command]["geparkeerd"].append({**d, "link": parkeerplaats_link(d, namespace)})
    return sorted(rijen.values(), key=lambda r: str(r["verstuurd"] or r["beantwoord"] or ""))


def parkeerplaats_link(dode_brief: dict[str, Any], namespace: str) -> str:
    """The parking lot page of a dead letter's queue, at that message."""
    naam = dode_brief["wachtrij"].removesuffix(".dlq")
    naam = naam[len(namespace):] if namespace and naam.startswith(namespace) else naam
    return (f"/wachtrijen/{urllib.parse.quote(naam, safe='')}/geparkeerd"
            f"#bericht-{urllib.parse.quote(str(dode_brief.get('id')), safe='')}")


async def documenten(console: Console, token: str, zaak: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                                                     list[dict[str, Any]], str]:
    """The case's letters (notifications: the delivery log of its application) and beschikkingen (grants), and
    what could not be read. Only what functioneel beheer needs: kinds, kenmerken, dates, amounts, delivery state;
    no addresses, no letter text."""
    s, fouten = console.settings, []
    try:
        brieven = await console.backends.dienst("notifications", s.console_notifications_url, "/berichten", token,
                                                aanvraagId=zaak["id"]) or []
    except BackendError as exc:
        brieven, fouten = [], [str(exc)]
    ids = {b.get("beschikkingId") for b in brieven}
    variabele = (zaak.get("variabelen") or {}).get("beschikking")
    if isinstance(variabele, dict):
        ids.add(variabele.get("beschikkingId"))
    ids.discard(None)

    async def een(beschikking_id: str) -> dict[str, Any] | None:
        path = f"/beschikkingen/{urllib.parse.quote(str(beschikking_id), safe='')}"
        found = await console.backends.dienst("grants", s.console_grants_url, path, token)
        return found if isinstance(found, dict) else None
    try:
        beschikkingen = [b for b in await asyncio.gather(*(een(i) for i in sorted(ids))) if b]
    except BackendError as exc:
        beschikkingen, fouten = [], [*fouten, str(exc)]
    velden = ("beschikkingId", "kenmerk", "soort", "datum", "bedragCents", "bezwaartermijnEinde", "regeling",
              "trajectType", "nieuweEinddatum")
    brief_velden = ("id", "beschikkingId", "kenmerk", "soort", "onderwerp", "status", "aangemaaktOp", "verzondenOp",
                    "pogingen")
    return ([{**{k: b.get(k) for k in brief_velden}, "pogingen": len(b.get("pogingen") or [])} for b in brieven],
            sorted(({k: b.get(k) for k in velden} for b in beschikkingen), key=lambda b: str(b.get("datum"))),
            "; ".join(fouten))
