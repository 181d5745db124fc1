"""The ledger per ggz: totals per funding share, every booking counted exactly once, at a cost that does not grow
with the bookings ever made (docs/adr/0011).

A booking is keyed (``<order id>:<kind>``, ``<recovery id>:...``) and never changes once made; its amounts are
added to the ledger's totals. Until 2026-11 every booking stayed in the ledger document itself
(``boekingen.<key>``), so a retry found it there; FerretDB v1 decodes the whole document for every read and write,
so with 20,000 cases (2.8 MB) each booking held the write lock for 5.2-5.8 s and each read took 5.1 s.

Now the ledger (``grootboek``, ``_id`` = KvK) keeps only the latest bookings, at most ``VENSTER`` of them, in
``boekingen``; older ones move to ``grootboekposten`` (one small document each, ``_id`` ``<kvk>/<key>``). The
ledger's ``tijdperk`` counts those moves. A booking reads the ledger, looks its key up in ``grootboekposten``
(by ``_id``), and then writes the ledger once: its totals, its key, guarded on the key being absent *and* on the
``tijdperk`` it read. That guard is what makes the two places one: a key can leave the window only in a move,
which raises ``tijdperk``, so a booking that looked in ``grootboekposten`` before its key was moved there finds
its write refused and looks again. A move copies the window's bookings to ``grootboekposten`` first (a copy
already there is the same booking) and then removes exactly those keys from the window, guarded on ``tijdperk``;
bookings added meanwhile stay. So a kill at any point loses nothing and a retry counts nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from servicekit.layout import move_to_layout
from servicekit.store import Document, DuplicateKeyError, nested

#: Bookings kept in the ledger document: each ledger write costs about 3 ms at 16 keys and 12 ms at 64 on FerretDB
#: v1 (measured 2026-11-29), so the window is small and moves out often (a move is one insert and one update).
VENSTER = 32
#: The ledger's mark that it keeps a window (``deel_uit`` moves a ledger written before it).
INDELING = "venster"
#: Archive look-ups at once for a bulk booking (the FerretDB connection pool is small).
TEGELIJK = 8

Bedragen = Mapping[str, Mapping[str, int]]


def post_id(kvk: str, sleutel: str) -> str:
    return f"{kvk}/{sleutel}"


def _record(bedragen: Bedragen) -> dict[str, dict[str, int]]:
    return {aandeel: dict(kolommen) for aandeel, kolommen in bedragen.items()}


def _inc(boekingen: Sequence[tuple[str, Bedragen]]) -> dict[str, int]:
    inc: dict[str, int] = {"revision": 1}
    for _, bedragen in boekingen:
        for aandeel, kolommen in bedragen.items():
            for kolom, cents in kolommen.items():
                inc[f"{aandeel}.{kolom}"] = inc.get(f"{aandeel}.{kolom}", 0) + cents
    return inc


def _tijdperk(kop: Document) -> int:
    return int(kop.get("tijdperk", 0))


class Grootboek:
    def __init__(self, koppen: AsyncCollection[Document], posten: AsyncCollection[Document]) -> None:
        self.koppen = koppen
        self.posten = posten

    async def ensure_indexes(self) -> None:
        await self.posten.create_index("kvk")  # the reports' and checks' read of one ggz's bookings (MongoDB)
        await self.deel_uit()

    async def van(self, kvk: str) -> Document | None:
        """The ledger: totals per share, ``open_terugvorderingen``; ``boekingen`` holds only the latest."""
        return await self.koppen.find_one({"_id": kvk})

    async def boekingen_van(self, kvk: str) -> dict[str, Any]:
        """Every booking of the ggz by key (the window and the moved ones; a scan, for checks and reports)."""
        kop = await self.van(kvk) or {}
        alle = {str(p["sleutel"]): p["boeking"] for p in await self.posten.find({"kvk": kvk}).to_list(None)}
        alle.update(kop.get("boekingen") or {})
        return alle

    async def boeken(self, kvk: str, sleutel: str, bedragen: Bedragen,
                     zetten: Mapping[str, Any] | None = None, wissen: tuple[str, ...] = ()) -> bool:
        """Book once per ``sleutel``: ``bedragen`` is {share: {column: cents}}; ``zetten``/``wissen`` change other
        fields of the ledger in the same write. True when booked now, False when it was booked before. The ledger
        is created by the first booking."""
        veld = f"boekingen.{sleutel}"
        update: dict[str, Any] = {"$inc": _inc([(sleutel, bedragen)]), "$set": {veld: _record(bedragen),
                                                                              **(zetten or {})}}
        if wissen:
            update["$unset"] = {w: "" for w in wissen}
        for _ in range(100):
            kop = await self._kop(kvk)
            if kop is None:
                nieuw = nested({"_id": kvk, "tijdperk": 0, "indeling": INDELING, **update["$inc"],
                                 **update["$set"]})
                with contextlib.suppress(DuplicateKeyError):  # created meanwhile: read it again
                    await self.koppen.insert_one(nieuw)
                    return True
                continue
            if sleutel in (kop.get("boekingen") or {}):
                return False
            if len(kop.get("boekingen") or {}) >= VENSTER:
                await self._verplaats(kop)
                continue
            if await self.posten.find_one({"_id": post_id(kvk, sleutel)}, {"_id": 1}) is not None:
                return False
            result = await self.koppen.update_one(
                {"_id": kvk, "tijdperk": _tijdperk(kop), veld: {"$exists": False}}, update)
            if result.matched_count == 1:
                return True
            # booked meanwhile, or the window moved out: the next read tells which
        raise RuntimeError(f"grootboek/{kvk}: too many concurrent changes while booking {sleutel}")

    async def boeken_samen(self, kvk: str, boekingen: Sequence[tuple[str, Bedragen]]) -> None:
        """Book several keyed bookings of one ledger, ``VENSTER`` per write, each once (a key given twice counts
        the first time; a key booked before, by an earlier attempt, not again)."""
        eerst: dict[str, Bedragen] = {}
        for sleutel, bedragen in boekingen:
            eerst.setdefault(sleutel, bedragen)
        rij = list(eerst.items())
        for start in range(0, len(rij), VENSTER):
            await self._samen(kvk, rij[start:start + VENSTER])

    async def _samen(self, kvk: str, deel: list[tuple[str, Bedragen]]) -> None:
        for _ in range(100):
            kop = await self._kop(kvk)
            if kop is None:  # the first booking creates the ledger; the rest go together
                await self.boeken(kvk, *deel[0])
                continue
            venster = kop.get("boekingen") or {}
            if venster and len(venster) + len(deel) > VENSTER:
                await self._verplaats(kop)
                continue
            open_ = [(s, b) for s, b in deel if s not in venster]
            gevonden = await self._verplaatst(kvk, [s for s, _ in open_])
            open_ = [(s, b) for s, b in open_ if s not in gevonden]
            if not open_:
                return
            result = await self.koppen.update_one(
                {"_id": kvk, "tijdperk": _tijdperk(kop), **{f"boekingen.{s}": {"$exists": False} for s, _ in open_}},
                {"$inc": _inc(open_), "$set": {f"boekingen.{s}": _record(b) for s, b in open_}})
            if result.matched_count == 1:
                return
        raise RuntimeError(f"grootboek/{kvk}: too many concurrent changes while booking {len(deel)} together")

    async def _verplaatst(self, kvk: str, sleutels: list[str]) -> set[str]:
        """The keys among ``sleutels`` that were moved out of the window (each looked up by ``_id``)."""
        poort = asyncio.Semaphore(TEGELIJK)

        async def kijk(sleutel: str) -> str | None:
            async with poort:
                found = await self.posten.find_one({"_id": post_id(kvk, sleutel)}, {"_id": 1})
            return sleutel if found is not None else None

        return {s for s in await asyncio.gather(*(kijk(s) for s in sleutels)) if s is not None}

    async def _kop(self, kvk: str) -> Document | None:
        kop = await self.koppen.find_one({"_id": kvk}, {"tijdperk": 1, "indeling": 1, "boekingen": 1})
        if kop is not None and kop.get("indeling") != INDELING:  # written before the window: move it first
            await self.deel_uit(kvk)
            kop = await self.koppen.find_one({"_id": kvk}, {"tijdperk": 1, "indeling": 1, "boekingen": 1})
        return kop

    async def _verplaats(self, kop: Document) -> bool:
        """Move the window as read (``kop``) to ``grootboekposten`` and remove those keys from it, guarded on the
        ``tijdperk`` read; False when another process moved it first (its copies are the same bookings)."""
        venster: dict[str, Any] = kop.get("boekingen") or {}
        kvk = str(kop["_id"])
        await self._kopieer(kvk, venster)
        update: dict[str, Any] = {"$inc": {"tijdperk": 1}}
        if venster:
            update["$unset"] = {f"boekingen.{s}": "" for s in venster}
        result = await self.koppen.update_one({"_id": kvk, "tijdperk": _tijdperk(kop)}, update)
        return result.matched_count == 1

    async def _kopieer(self, kvk: str, boekingen: Mapping[str, Any]) -> None:
        docs = [{"_id": post_id(kvk, s), "kvk": kvk, "sleutel": s, "boeking": b} for s, b in boekingen.items()]
        for start in range(0, len(docs), 1000):
            try:
                await self.posten.insert_many(docs[start:start + 1000], ordered=False)
            except BulkWriteError as exc:  # copied before (an earlier move that lost its ledger write): the same
                andere = [e for e in exc.details.get("writeErrors", []) if e.get("code") != 11000]
                if andere:
                    raise

    async def deel_uit(self, kvk: str | None = None) -> int:
        """Move the bookings of ledgers written before the window (all in ``boekingen``) to ``grootboekposten``;
        every such ledger (a scan of the few ledgers, at start), or only ``kvk``. Returns how many it moved. Safe
        to repeat and to run in several processes at once: the ledger is changed only at the revision read."""
        async def verhuis(kop: Document) -> bool:
            await self._kopieer(str(kop["_id"]), kop.get("boekingen") or {})
            revisie = kop.get("revision")
            result = await self.koppen.update_one(
                {"_id": kop["_id"], "revision": revisie if revisie is not None else {"$exists": False}},
                {"$unset": {"boekingen": ""}, "$inc": {"revision": 1},
                 "$set": {"indeling": INDELING, "tijdperk": int(kop.get("tijdperk", 0)) + 1}})
            return result.matched_count == 1

        return await move_to_layout(self.koppen, INDELING, verhuis, kvk)
