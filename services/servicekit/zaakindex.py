"""The case explorer's filters and an in-memory index of case summaries that answers them (issue 15).

FerretDB v1 decodes every instance document (with its workflow state) for any filter but ``_id``: with 2,000
cases a filtered list already took longer than the console's 15 s (tests/perf/bench_console.py, before this
module). The engine therefore keeps, in each engine process, a summary of every case in memory
(state, process, version, active elements, open incidents, start, and the variables functioneel beheer may see)
and filters and pages that. It is filled once at start (in the background; until then the list reads the
database as before) from the open cases' documents and the small summaries the engine writes of each closed case
when it moves out of the open cases (never the closed cases' whole documents), and kept current by every write of
this engine process; a full re-read every hour
(``rescan_seconds``) picks up what other engine processes wrote (with several engine processes the list can lag
that long behind their writes).

The matching rules are the console's: a variable by dotted path, a first name not on top looked for one level
down (message variables hold the event data), conditions equals/contains/exists, all combined with AND. Only the
variables functioneel beheer may see (``zaakvariabelen``) are summarised, so no filter can match on a BSN.

In servicekit because the console parses and describes the same filters (services import only servicekit,
never each other: tests/unit/test_layering.py); only the engine builds the index.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from servicekit.logging import get_logger
from servicekit.store import Packing
from servicekit.zaakvariabelen import zichtbare_variabelen

log = get_logger(__name__)
MISSING = object()
OPERATOREN = ("gelijk", "bevat", "bestaat")
NAAM = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,4}")
#: What the summary keeps of an instance document (never its state, journal or history).
PROJECTIE = {"status": 1, "process_id": 1, "definition_hash": 1, "active_elements": 1, "incidents": 1,
             "started_at": 1, "variables": 1}


def zoek(variabelen: Mapping[str, Any], pad: str, default: Any = MISSING) -> Any:
    """A variable by dotted path; a first name that is not on top is looked for one level down."""
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


def voldoet(variabelen: Mapping[str, Any], naam: str, op: str, gezocht: str) -> bool:
    waarde = zoek(variabelen, naam)
    if waarde is MISSING:
        return False
    if op == "bestaat":
        return True
    if op == "gelijk":
        return _als_tekst(waarde) == gezocht
    if isinstance(waarde, list):
        return any(gezocht in _als_tekst(w) for w in waarde)
    return gezocht in _als_tekst(waarde)


@dataclass(frozen=True)
class Criteria:
    """Filters on a case's variables (the engine's own fields are filtered by ``Samenvatting.past``)."""

    gemeente: str = ""
    ggz: str = ""
    regeling: str = ""
    ontvangen_van: str = ""
    ontvangen_tot: str = ""
    te_laat: bool | None = None
    voorwaarden: tuple[tuple[str, str, str], ...] = field(default_factory=tuple)

    def leeg(self) -> bool:
        return self == Criteria()

    def past(self, variabelen: Mapping[str, Any], feiten: Feiten | None = None) -> bool:
        gemeente, ggz, regeling, dag, te_laat = feiten or feiten_van(variabelen)
        for gezocht, waarde in ((self.gemeente, gemeente), (self.ggz, ggz), (self.regeling, regeling)):
            if gezocht and waarde != gezocht:
                return False
        if (self.ontvangen_van or self.ontvangen_tot) and (
                not dag or (self.ontvangen_van and dag < self.ontvangen_van)
                or (self.ontvangen_tot and dag > self.ontvangen_tot)):
            return False
        if self.te_laat is not None and te_laat != self.te_laat:
            return False
        return all(voldoet(variabelen, naam, op, waarde) for naam, op, waarde in self.voorwaarden)


#: What the fixed filters look at, taken once per case: gemeente, ggz, regulation, day received, overdue.
Feiten = tuple[str, str, str, str, bool]


def feiten_van(variabelen: Mapping[str, Any]) -> Feiten:
    ontvangen = zoek(variabelen, "ontvangenOp", None)
    return (str(zoek(variabelen, "gemeenteCode", None)), str(zoek(variabelen, "ggzKvkNummer", None)),
            str(zoek(variabelen, "regeling", None)), str(ontvangen)[:10] if ontvangen else "",
            variabelen.get("te_laat") is True)


def samenvatting(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A case as the list shows it (GET /zaken)."""
    return {"id": doc["_id"], "status": doc["status"], "processId": doc["process_id"],
            "definitieHash": doc["definition_hash"], "actieveElementen": doc.get("active_elements", []),
            "openIncidenten": sum(1 for i in doc.get("incidents", []) if not i.get("resolved")),
            "gestartOp": doc.get("started_at"),
            "variabelen": zichtbare_variabelen(doc["process_id"], "beheer", doc.get("variables", {}))}


def past(zaak: Mapping[str, Any], velden: Mapping[str, Any], criteria: Criteria,
         feiten: Feiten | None = None) -> bool:
    """Whether a summary matches the engine fields (processId, definitieHash, status, element, incident) and the
    criteria on its variables."""
    for sleutel in ("processId", "definitieHash", "status"):
        if velden.get(sleutel) is not None and zaak[sleutel] != velden[sleutel]:
            return False
    if velden.get("element") is not None and velden["element"] not in zaak["actieveElementen"]:
        return False
    if velden.get("incident") is not None and (zaak["openIncidenten"] > 0) != velden["incident"]:
        return False
    return criteria.leeg() or criteria.past(zaak["variabelen"], feiten)


def volgorde(zaak: Mapping[str, Any]) -> tuple[float, str]:
    gestart = zaak.get("gestartOp")
    return (-gestart.timestamp() if isinstance(gestart, datetime) else 0.0, zaak["id"])


class ZaakIndex:
    """Every case's summary in memory, newest first on demand; see the module docstring."""

    def __init__(self, rescan_seconds: float = 3600.0) -> None:
        self.zaken: dict[str, dict[str, Any]] = {}
        self.feiten: dict[str, Feiten] = {}
        self.gereed = False
        self.rescan_seconds = rescan_seconds
        self._gesorteerd: list[dict[str, Any]] | None = None
        self._kaarten: dict[int, dict[str, set[str]]] = {}
        self._tijdens_lezen: dict[str, dict[str, Any]] | None = None

    def bij(self, doc: Mapping[str, Any]) -> None:
        """A case as this engine process just wrote it."""
        zaak = samenvatting(doc)
        self.zaken[zaak["id"]] = zaak
        self.feiten[zaak["id"]] = feiten_van(zaak["variabelen"])
        if self._tijdens_lezen is not None:
            self._tijdens_lezen[zaak["id"]] = zaak
        self._gesorteerd, self._kaarten = None, {}

    async def lees(self, *collections: Any, batch: int = 500, packing: Packing | None = None) -> None:
        """Read every case's summary from the database (full scans: slow on FerretDB, hence in the background),
        the collections in order (a case in two counts as the later one has it); writes made meanwhile win over
        what the scan read. ``packing``: how the collections pack fields (servicekit.store.Packing)."""
        self._tijdens_lezen = {}
        gelezen: dict[str, dict[str, Any]] = {}
        projectie = PROJECTIE if packing is None else packing.projection(PROJECTIE)
        for collection in collections:
            async for doc in collection.find({}, projectie, batch_size=batch):
                if packing is not None:
                    packing.unpack(doc, collection.codec_options)
                gelezen[doc["_id"]] = samenvatting(doc)
        gelezen.update(self._tijdens_lezen)
        self._tijdens_lezen = None
        feiten = {i: feiten_van(z["variabelen"]) for i, z in gelezen.items()}
        self.zaken, self.feiten, self._gesorteerd, self._kaarten, self.gereed = gelezen, feiten, None, {}, True

    async def bijhouden(self, *collections: Any, packing: Packing | None = None) -> None:
        """Read at start, then again every ``rescan_seconds`` (what other engine processes wrote)."""
        while True:
            try:
                await self.lees(*collections, packing=packing)
                log.info("zaakindex.gelezen", zaken=len(self.zaken))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the list falls back to the database until the next round
                log.warning("zaakindex.niet_gelezen", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.rescan_seconds)

    def zoek(self, velden: Mapping[str, Any], criteria: Criteria, offset: int,
             limit: int) -> tuple[int, list[dict[str, Any]]]:
        if self._gesorteerd is None:
            self._gesorteerd = sorted(self.zaken.values(), key=volgorde)
        if criteria.leeg() and all(v is None for v in velden.values()):
            return len(self._gesorteerd), self._gesorteerd[offset:offset + limit]
        # The cases with the asked gemeente, ggz and regulation, from a map per fact (an intersection of sets);
        # the other checks run only on those, and only the checks that apply.
        kandidaten: set[str] | None = None
        for positie, gezocht in enumerate((criteria.gemeente, criteria.ggz, criteria.regeling)):
            if gezocht:
                ids = self._per_feit(positie).get(gezocht, set())
                kandidaten = ids if kandidaten is None else kandidaten & ids
        gelijk = [(k, v) for k, v in velden.items() if k in ("processId", "definitieHash", "status") and v is not None]
        element, incident = velden.get("element"), velden.get("incident")
        rest = Criteria(ontvangen_van=criteria.ontvangen_van, ontvangen_tot=criteria.ontvangen_tot,
                        te_laat=criteria.te_laat, voorwaarden=criteria.voorwaarden)
        op_variabelen = not rest.leeg()
        feiten = self.feiten
        gevonden = [z for z in self._gesorteerd
                    if (kandidaten is None or z["id"] in kandidaten)
                    and all(z[k] == v for k, v in gelijk)
                    and (element is None or element in z["actieveElementen"])
                    and (incident is None or (z["openIncidenten"] > 0) == incident)
                    and (not op_variabelen or rest.past(z["variabelen"], feiten.get(z["id"])))]
        return len(gevonden), gevonden[offset:offset + limit]

    def _per_feit(self, positie: int) -> dict[str, set[str]]:
        """Case ids per value of one fact (gemeente, ggz, regulation); built again after a write."""
        if positie not in self._kaarten:
            kaart: dict[str, set[str]] = {}
            for zaak_id, f in self.feiten.items():
                kaart.setdefault(str(f[positie]), set()).add(zaak_id)
            self._kaarten[positie] = kaart
        return self._kaarten[positie]


@contextlib.asynccontextmanager
async def bijgehouden(index: ZaakIndex, *collections: Any) -> Any:
    task = asyncio.create_task(index.bijhouden(*collections))
    try:
        yield index
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def voorwaarden(raw: list[str]) -> tuple[tuple[str, str, str], ...]:
    """The explorer's conditions on variables, each JSON [naam, operator, waarde]; ValueError for anything else."""
    out = []
    for item in raw:
        try:
            naam, op, waarde = json.loads(item)
        except (ValueError, TypeError) as exc:
            raise ValueError("Geen [naam, operator, waarde].") from exc
        if not (isinstance(naam, str) and NAAM.fullmatch(naam) and op in OPERATOREN
                and isinstance(waarde, str) and len(waarde) <= 200):
            raise ValueError("Een variabelenaam, gelijk/bevat/bestaat en een waarde.")
        out.append((naam, op, waarde))
    return tuple(out)
