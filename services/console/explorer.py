"""The case explorer's filters: read from the query string (bookmarkable) and handed to the engine's GET /zaken,
which filters and pages them (``servicekit.zaakindex``, the same matching rules) on the variables functioneel
beheer may see (``servicekit.zaakvariabelen``): those hold no BSN and no health data, so a filter in a URL
cannot carry them either.
"""

from __future__ import annotations

import csv
import io
import json
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from servicekit import zaakindex
from servicekit.zaakindex import MISSING, Criteria
from servicekit.zaakindex import zoek as zoek

#: The engine's operators (servicekit.zaakindex, which also checks them) with the form's words for them.
OPERATOREN = dict(zip(zaakindex.OPERATOREN, ("is gelijk aan", "bevat", "bestaat"), strict=True))
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
            if not zaakindex.NAAM.fullmatch(naam) or op not in OPERATOREN:
                f.fouten.append("Een voorwaarde heeft een variabelenaam (bijv. aanvraag.trajectType) en een "
                                "operator (gelijk, bevat, bestaat).")
                continue
            f.voorwaarden.append(Voorwaarde(naam, op, "" if op == "bestaat" else waarde))
        return f

    def engine_filters(self) -> dict[str, Any]:
        """Every filter as the engine's GET /zaken takes it: the engine filters and pages (zaakindex.py)."""
        return {"processId": self.proces or None, "definitieHash": self.versie or None, "status": self.status or None,
                "element": self.element or None,
                "incident": {"ja": "true", "nee": "false"}.get(self.incident),
                "gemeente": self.gemeente or None, "ggz": self.ggz or None, "regeling": self.regeling or None,
                "ontvangenVan": self.ontvangen_van or None, "ontvangenTot": self.ontvangen_tot or None,
                "teLaat": {"ja": "true", "nee": "false"}.get(self.te_laat),
                "voorwaarde": [json.dumps([v.naam, v.op, v.waarde]) for v in self.voorwaarden] or None}

    def query(self, **extra: Any) -> str:
        """The filters as a query string (bookmarkable); without empty values."""
        pairs: list[tuple[str, str]] = [(n, getattr(self, n)) for n in self.SIMPEL if getattr(self, n)]
        for v in self.voorwaarden:
            pairs += [("vnaam", v.naam), ("vop", v.op), ("vwaarde", v.waarde)]
        pairs += [(k, str(v)) for k, v in extra.items() if v not in (None, "")]
        return urllib.parse.urlencode(pairs)

    def criteria(self) -> Criteria:
        return Criteria(self.gemeente, self.ggz, self.regeling, self.ontvangen_van, self.ontvangen_tot,
                        {"ja": True, "nee": False}.get(self.te_laat),
                        tuple((v.naam, v.op, v.waarde) for v in self.voorwaarden))

    def past(self, zaak: Mapping[str, Any]) -> bool:
        """Whether a case summary matches the filters on its variables (the engine applies the same rules)."""
        return self.criteria().past(zaak.get("variabelen") or {})


def voldoet(variabelen: Mapping[str, Any], v: Voorwaarde) -> bool:
    return zaakindex.voldoet(variabelen, v.naam, v.op, v.waarde)


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
