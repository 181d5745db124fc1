"""The case explorer's filters: read from the query string (bookmarkable), applied to the engine's case summaries.

The engine filters what it indexes itself (process, version, state, active element, incident); the rest is
matched here on the variables functioneel beheer may see (``process_engine.zaakvariabelen``): those hold no BSN
and no health data, so a filter in a URL cannot carry them either.
"""

from __future__ import annotations

import csv
import io
import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

MISSING = object()
OPERATOREN = {"gelijk": "is gelijk aan", "bevat": "bevat", "bestaat": "bestaat"}
_NAAM = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,4}")
MAX_VOORWAARDEN = 3
MAX_LENGTE = 200


@dataclass(frozen=True)
class Voorwaarde:
    naam: str
    op: str
    waarde: str = ""


@dataclass
class Filters:
    proces: str = ""
    versie: str = ""
    status: str = ""
    element: str = ""
    incident: str = ""
    gemeente: str = ""
    ggz: str = ""
    regeling: str = ""
    ontvangen_van: str = ""
    ontvangen_tot: str = ""
    te_laat: str = ""
    voorwaarden: list[Voorwaarde] = field(default_factory=list)
    fouten: list[str] = field(default_factory=list)

    SIMPEL = ("proces", "versie", "status", "element", "incident", "gemeente", "ggz", "regeling", "ontvangen_van",
              "ontvangen_tot", "te_laat")

    @classmethod
    def uit_query(cls, params: Mapping[str, str], lijsten: Mapping[str, Sequence[str]]) -> Filters:
        f = cls()
        for naam in cls.SIMPEL:
            setattr(f, naam, (params.get(naam) or "").strip()[:MAX_LENGTE])
        for naam in ("incident", "te_laat"):
            if getattr(f, naam) not in ("", "ja", "nee"):
                f.fouten.append(f"'{naam}' is ja of nee.")
                setattr(f, naam, "")
        for naam in ("ontvangen_van", "ontvangen_tot"):
            waarde = getattr(f, naam)
            if waarde:
                try:
                    date.fromisoformat(waarde)
                except ValueError:
                    f.fouten.append("Een datum is JJJJ-MM-DD.")
                    setattr(f, naam, "")
        namen, ops, waarden = (list(lijsten.get(k, [])) for k in ("vnaam", "vop", "vwaarde"))
        for i, naam in enumerate(namen[:MAX_VOORWAARDEN]):
            naam = naam.strip()
            if not naam:
                continue
            op = ops[i] if i < len(ops) else "gelijk"
            waarde = (waarden[i] if i < len(waarden) else "")[:MAX_LENGTE]
            if not _NAAM.fullmatch(naam) or op not in OPERATOREN:
                f.fouten.append("Een voorwaarde heeft een variabelenaam (bijv. aanvraag.trajectType) en een "
                                "operator (gelijk, bevat, bestaat).")
                continue
            f.voorwaarden.append(Voorwaarde(naam, op, "" if op == "bestaat" else waarde))
        return f

    def engine_filters(self) -> dict[str, Any]:
        return {"processId": self.proces or None, "definitieHash": self.versie or None, "status": self.status or None,
                "element": self.element or None,
                "incident": {"ja": "true", "nee": "false"}.get(self.incident)}

    def query(self, **extra: Any) -> str:
        """The filters as a query string (bookmarkable); without empty values."""
        pairs: list[tuple[str, str]] = [(n, getattr(self, n)) for n in self.SIMPEL if getattr(self, n)]
        for v in self.voorwaarden:
            pairs += [("vnaam", v.naam), ("vop", v.op), ("vwaarde", v.waarde)]
        pairs += [(k, str(v)) for k, v in extra.items() if v not in (None, "")]
        return urllib.parse.urlencode(pairs)

    def past(self, zaak: Mapping[str, Any]) -> bool:
        """Whether a case summary matches the filters the engine did not apply (all combined with AND)."""
        variabelen = zaak.get("variabelen") or {}
        for filter_, naam in ((self.gemeente, "gemeenteCode"), (self.ggz, "ggzKvkNummer"),
                              (self.regeling, "regeling")):
            if filter_ and str(zoek(variabelen, naam, None)) != filter_:
                return False
        if self.ontvangen_van or self.ontvangen_tot:
            ontvangen = zoek(variabelen, "ontvangenOp", None)
            dag = str(ontvangen)[:10] if ontvangen else ""
            if not dag or (self.ontvangen_van and dag < self.ontvangen_van) or (
                    self.ontvangen_tot and dag > self.ontvangen_tot):
                return False
        if self.te_laat and (variabelen.get("te_laat") is True) != (self.te_laat == "ja"):
            return False
        return all(voldoet(variabelen, v) for v in self.voorwaarden)


def zoek(variabelen: Mapping[str, Any], pad: str, default: Any = MISSING) -> Any:
    """A variable by dotted path; a first name that is not on top is looked for one level down (message
    variables hold the event data, as the engine's own organisation check does)."""
    eerste, *rest = pad.split(".")
    if eerste in variabelen:
        waarde: Any = variabelen[eerste]
    else:
        waarde = next((v[eerste] for v in variabelen.values() if isinstance(v, dict) and eerste in v), MISSING)
    for deel in rest:
        if not isinstance(waarde, dict) or deel not in waarde:
            return default
        waarde = waarde[deel]
    return default if waarde is MISSING else waarde


def _als_tekst(waarde: Any) -> str:
    return waarde if isinstance(waarde, str) else json.dumps(waarde, ensure_ascii=False)


def voldoet(variabelen: Mapping[str, Any], v: Voorwaarde) -> bool:
    waarde = zoek(variabelen, v.naam)
    if waarde is MISSING:
        return False
    if v.op == "bestaat":
        return True
    if v.op == "gelijk":
        return _als_tekst(waarde) == v.waarde
    if isinstance(waarde, list):
        return any(v.waarde in _als_tekst(w) for w in waarde)
    return v.waarde in _als_tekst(waarde)


CSV_KOLOMMEN = ["zaak", "status", "proces", "versie", "actieve elementen", "open incidenten", "gestart op",
                "gemeente", "ggz (KvK)", "ontvangen op", "beslisdatum", "te laat"]


def _cel(waarde: Any) -> str:
    tekst = "" if waarde is None or waarde is MISSING else str(waarde)
    # A spreadsheet would run a cell that starts with one of these as a formula (CSV injection).
    return f"'{tekst}" if tekst[:1] in ("=", "+", "-", "@", "\t", "\r") else tekst


def csv_regels(zaken: Iterable[Mapping[str, Any]], versies: Mapping[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(CSV_KOLOMMEN)
    for z in zaken:
        v = z.get("variabelen") or {}
        writer.writerow([_cel(x) for x in (
            z["id"], z["status"], z["processId"], versies.get(z["definitieHash"], z["definitieHash"][:12]),
            " ".join(z.get("actieveElementen") or []), z.get("openIncidenten", 0), z.get("gestartOp"),
            zoek(v, "gemeenteCode", None), zoek(v, "ggzKvkNummer", None), zoek(v, "ontvangenOp", None),
            v.get("beslisdatum"), "ja" if v.get("te_laat") is True else "nee")])
    return out.getvalue()
