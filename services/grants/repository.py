"""MongoDB documents of grants and the guarded single-document updates that keep budget and caps exact.

Collections (all looked up by ``_id``; FerretDB v1 scans for any other filter):

* ``zaken``: one per aanvraag (regulation, competent gemeente, toetsing, beschikkingen); command replies.
* ``reserveringsverzoeken``: one per aanvraag: the reservation request in order of receipt and its reply.
* ``budgetten``: one ledger per regulation and budget period: ``plafond_cents``, ``beschikbaar_cents``,
  ``gereserveerd_cents``, ``vastgelegd_cents``, ``aantal_reserveringen``; after the grant also
  ``betaald_cents``, ``teruggevorderd_cents``, ``vastgesteld_cents``; and ``laatste.<group>``, the last
  booking of each of ``GROEPEN`` groups of aanvragen (``_boek``).
* ``budgetposten``: the ledger's entries, one document per aanvraag (``_id`` ``<ledger>/a/<aanvraagId>``):
  ``reserveringen`` (amount and status) and ``financieel`` (the case's paid / recovered / vastgesteld totals), so
  the ledger totals are always the sum of its cases; and ``voornemens``, bookings of before session 14 written
  but not yet applied (since then the ledger's head holds the last booking of each group, ``boeking.<group>``).
  Until 2026-11 the entries stood in the ledger itself (FerretDB v1 decodes a map of n keys in n² steps: with
  20,000 cases one reservation held its write lock for 43-55 s), then in 256 buckets (ADR 0010); ``deel_in``
  moves both.
* ``caps``: one per regulation and gemeente where the regulation caps the number of trajectories.
* ``beschikkingen``: the letters, ``_id`` derived from the command id.
* ``leases``: who runs the allocator.
* ``volgorde``: the order of receipt: one small document per volgnummer and the head ``kop`` (allocator.py).

No transactions: every change is one guarded update keyed by the aanvraag id, so repeating a step after a
crash finds the effect already there and does nothing twice. ``beschikbaar`` is stored (not computed) so a
reservation is ``{beschikbaar_cents: {$gte: amount}, laatste.<group>: <as read>}`` + ``$inc``: no ``$expr`` needed,
never over-committed; the aanvraag's document follows the ledger (``_boek``). The places and the head of
``volgorde`` change through servicekit's unit of work (revision-checked); the ledgers and caps keep their guarded
``$inc`` steps (docs/adr/0009).
"""

from __future__ import annotations

import contextlib
import secrets
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from grants.domain import Regeling
from servicekit.layout import move_to_layout
from servicekit.store import ConcurrencyError, Document, DocumentStore, DuplicateKeyError, nested
from servicekit.unit_of_work import DOCUMENT, READ, Missing, Unchanged, UnitOfWork

GERESERVEERD, VASTGELEGD = "gereserveerd", "vastgelegd"
KOP = "kop"
#: A volgnummer's place in the order of receipt: announced by intake, asked for (the request waits), given
#: back before it was asked for (withdrawn), or closed (decided, given back and passed, or skipped).
AANGEKONDIGD, AANGEVRAAGD, VRIJGEGEVEN, GESLOTEN = "aangekondigd", "aangevraagd", "vrijgegeven", "gesloten"
AFWEZIG = "afwezig"  # in plaats_zetten's ``van``: the place may not exist yet


def ledger_id(regeling: str, periode: str) -> str:
    return f"{regeling}:{periode}"


RESERVERINGEN, FINANCIEEL = "reserveringen", "financieel"
#: The ledger's mark that its entries live in a document per aanvraag (``deel_in`` moves older layouts).
INDELING = "per-aanvraag"
#: The layout of session 10: the entries spread over 256 buckets, the ledger keeping each bucket's stand.
EMMERS_256 = "emmers-256"


def post_id(lid: str, aanvraag_id: str) -> str:
    """The document of an aanvraag's entries in a ledger."""
    return f"{lid}/a/{aanvraag_id}"


#: Groups of aanvragen whose bookings take turns (``_boek``): bookings of different groups never wait for each
#: other, and the ledger's head keeps one short string per group.
GROEPEN = 16


def groep(aanvraag_id: str) -> str:
    return f"{zlib.crc32(aanvraag_id.encode()) % GROEPEN:x}"


def _laatste(laatste: str | None) -> tuple[int, str, str]:
    """A group's last booking in the ledger, ``"<version>:<booking id>:<aanvraag>"``: the version it gives the
    aanvraag's document, its id and the aanvraag; (0, "", "") before the first."""
    if not laatste:
        return 0, "", ""
    versie, door, aanvraag = laatste.split(":", 2)
    return int(versie), door, aanvraag


def _op(versie: int) -> Any:
    """The filter for a document at ``versie``: one that no booking has touched yet has no version field."""
    return versie if versie else {"$exists": False}


def _voornemen(kop: Document, g: str, door: str, post: Document) -> dict[str, Any]:
    """What booking ``door`` of group ``g`` makes of the aanvraag's entry (``{"soort", "post"}``): the head's
    ``boeking.<group>`` since session 14, or, for a booking of before, its intent in the document (``voornemens``,
    read with it)."""
    voornemen: dict[str, Any] | None = (kop.get("boeking") or {}).get(g)
    if voornemen is not None and voornemen.get("door") == door:
        return voornemen
    oud: dict[str, Any] | None = (post.get("voornemens") or {}).get(door)
    if oud is None:
        raise RuntimeError(f"budgetposten/{post.get('_id')}: the ledger names booking {door}; neither the ledger "
                           "nor the document holds it")
    return oud


class Geweigerd(Exception):
    """A booking the ledger does not allow (a reservation above what is available)."""


@dataclass(frozen=True)
class Boeking:
    """One change of an entry: the entry afterwards (None: removed), the ledger totals' ``$inc`` and the extra
    guard on the ledger (a reservation's ``beschikbaar_cents >= amount``)."""

    post: dict[str, Any] | None
    totalen: dict[str, int]
    voorwaarde: dict[str, Any] = field(default_factory=dict)


def _nieuw_grootboek(regeling: str, periode: str, plafond_cents: int) -> Document:
    return {"regeling": regeling, "periode": periode, "plafond_cents": plafond_cents,
            "beschikbaar_cents": plafond_cents, "gereserveerd_cents": 0, "vastgelegd_cents": 0,
            "aantal_reserveringen": 0, "indeling": INDELING, "revision": 1}


def met_posten(kop: Document, posten: Iterable[Document]) -> Document:
    """A ledger's head with all its entries as ``reserveringen`` and ``financieel`` by aanvraag id: its
    documents' entries, with the booking the head names last applied where its document is still behind."""
    alle: dict[str, dict[str, Any]] = {RESERVERINGEN: dict(kop.get(RESERVERINGEN) or {}),
                                       FINANCIEEL: dict(kop.get(FINANCIEEL) or {})}  # not yet moved out
    laatste = {aanvraag: (versie, door, g) for g, (versie, door, aanvraag)
               in ((g, _laatste(s)) for g, s in (kop.get("laatste") or {}).items())}
    posten = list(posten)
    for post in posten:
        aid = post.get("aanvraag")
        if aid is None:
            continue  # a bucket of the 256 layout, not yet removed
        for soort in (RESERVERINGEN, FINANCIEEL):
            if post.get(soort) is not None:
                alle[soort][aid] = post[soort]
        versie, door, g = laatste.get(aid, (0, "", ""))
        if int(post.get("versie", 0)) < versie:
            voornemen = _voornemen(kop, g, door, post)
            if voornemen.get("post") is None:
                alle[voornemen["soort"]].pop(aid, None)
            else:
                alle[voornemen["soort"]][aid] = voornemen["post"]
    met_document = {p.get("aanvraag") for p in posten}
    for aid, (_versie, door, g) in laatste.items():  # a first booking whose document is not written yet
        voornemen = (kop.get("boeking") or {}).get(g) or {}
        if aid not in met_document and voornemen.get("door") == door and voornemen.get("post") is not None:
            alle[voornemen["soort"]][aid] = voornemen["post"]
    return {**{k: v for k, v in kop.items() if k not in ("emmers", "laatste", "boeking")}, **alle}


def _uit_emmers(kop: Document, bakken: Iterable[Document]) -> dict[str, dict[str, Any]]:
    """The entries of a ledger in the 256-bucket layout (session 10): its buckets' entries, with the booking that
    the head names for a bucket applied where that bucket is behind."""
    alle: dict[str, dict[str, Any]] = {RESERVERINGEN: {}, FINANCIEEL: {}}
    bak_van: dict[str, Document] = {}
    for bak in bakken:
        if bak.get("aanvraag") is not None:
            continue
        bak_van[str(bak["_id"]).rsplit("/", 1)[1]] = bak
        for soort in (RESERVERINGEN, FINANCIEEL):
            alle[soort].update(bak.get(soort) or {})
    for b, stand in (kop.get("emmers") or {}).items():
        versie_s, _, door = str(stand).partition(":")
        bak = bak_van.get(b) or {}
        if int(versie_s or 0) > int(bak.get("versie", 0)):
            voornemen = (bak.get("voornemens") or {})[door]
            if voornemen.get("post") is None:
                alle[voornemen["soort"]].pop(voornemen["aanvraag"], None)
            else:
                alle[voornemen["soort"]][voornemen["aanvraag"]] = voornemen["post"]
    return alle


def plaats_id(nummer: int) -> str:
    """A volgnummer's document id: a string, because FerretDB v1 finds only string ids without a scan."""
    return f"nr-{nummer}"


def cap_id(regeling: str, gemeente_code: str) -> str:
    return f"{regeling}:{gemeente_code}"


class GrantsRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.zaken = DocumentStore(db, "zaken")
        self.verzoeken = DocumentStore(db, "reserveringsverzoeken")
        self.beschikkingen = DocumentStore(db, "beschikkingen")
        self.budgetten = db["budgetten"]
        self.posten = db["budgetposten"]
        self.caps = db["caps"]
        self.leases = db["leases"]
        self.volgorde = DocumentStore(db, "volgorde")
        self._plaatsen = UnitOfWork(self.volgorde, DOCUMENT, retries=20)
        # the head: only ``tot`` is written, so a ``bekend`` raised meanwhile (``$max``, revision unchanged) stays
        self._kop = UnitOfWork(self.volgorde, DOCUMENT, fields=("tot",), retries=20)

    async def ensure_indexes(self) -> None:
        for store in (self.zaken, self.verzoeken):
            await store.collection.create_index("has_outbox")
        await self.posten.create_index("ledger")
        await self.deel_in()

    # ------------------------------------------------------------------------------------------ ledgers

    async def ensure_ledger(self, regeling: Regeling, periode_id: str) -> None:
        """Create the ledger from the configured ceiling unless it exists (an admin may have changed it)."""
        periode = next(p for p in regeling.budgetperioden if p.id == periode_id)
        with contextlib.suppress(DuplicateKeyError):  # another process created it at the same moment
            await self.budgetten.update_one(
                {"_id": ledger_id(regeling.id, periode_id)},
                {"$setOnInsert": _nieuw_grootboek(regeling.id, periode_id, periode.plafond_cents)}, upsert=True)

    async def reserve_budget(self, lid: str, aanvraag_id: str, bedrag_cents: int, at: datetime) -> bool:
        """Reserve ``bedrag_cents`` for the aanvraag; True when it holds a reservation afterwards (now or
        from an earlier attempt), False when the ceiling does not allow it."""
        def besluit(oud: dict[str, Any] | None, kop: Document) -> Boeking | None:
            if oud is not None:
                return None  # held already (an earlier attempt)
            if int(kop["beschikbaar_cents"]) < bedrag_cents:
                raise Geweigerd
            return Boeking({"bedragCents": bedrag_cents, "status": GERESERVEERD, "at": at},
                           {"beschikbaar_cents": -bedrag_cents, "gereserveerd_cents": bedrag_cents,
                            "aantal_reserveringen": 1},
                           {"beschikbaar_cents": {"$gte": bedrag_cents}})

        try:  # the entry afterwards, or None: no ledger
            return await self._boek(lid, RESERVERINGEN, aanvraag_id, besluit) is not None
        except Geweigerd:
            return False

    async def reservering(self, lid: str, aanvraag_id: str) -> dict[str, Any] | None:
        g = groep(aanvraag_id)
        projectie = {f"laatste.{g}": 1, f"boeking.{g}": 1, "indeling": 1}
        kop = await self.budgetten.find_one({"_id": lid}, projectie)
        if kop is not None and kop.get("indeling") != INDELING:  # read before the start's move: move it now
            await self.deel_in(lid)
            kop = await self.budgetten.find_one({"_id": lid}, projectie)
        if kop is None:
            return None
        return await self._post(kop, lid, RESERVERINGEN, aanvraag_id)

    async def commit_budget(self, lid: str, aanvraag_id: str, bedrag_cents: int, at: datetime) -> dict[str, Any] | None:
        """Move a reservation to committed; guarded by its status so a retry is harmless. Returns the
        reservation as it stands afterwards, or None when there is none."""
        def besluit(oud: dict[str, Any] | None, kop: Document) -> Boeking | None:
            if oud is None or oud.get("status") != GERESERVEERD:
                return None
            bedrag = int(oud["bedragCents"])
            return Boeking({**oud, "status": VASTGELEGD, "vastgelegdOp": at},
                           {"gereserveerd_cents": -bedrag, "vastgelegd_cents": bedrag})

        return await self._boek(lid, RESERVERINGEN, aanvraag_id, besluit)

    async def release_budget(self, lid: str, aanvraag_id: str, bedrag_cents: int) -> None:
        """Give a reservation (reserved or committed) back to ``beschikbaar``; nothing when there is none."""
        def besluit(oud: dict[str, Any] | None, kop: Document) -> Boeking | None:
            if oud is None:
                return None
            bedrag = int(oud["bedragCents"])
            teller = "vastgelegd_cents" if oud.get("status") == VASTGELEGD else "gereserveerd_cents"
            return Boeking(None, {"beschikbaar_cents": bedrag, teller: -bedrag, "aantal_reserveringen": -1})

        await self._boek(lid, RESERVERINGEN, aanvraag_id, besluit)

    async def register_financial(self, lid: str, aanvraag_id: str, command_id: str,
                                 totalen: dict[str, int | None]) -> dict[str, Any]:
        """Set the case's paid / recovered / vastgesteld totals on the ledger and move the ledger totals by
        the difference, in one booking: a retry of the same command finds its id in the entry and changes
        nothing. A None total keeps the value it had. Returns the entry as it stands afterwards."""
        def besluit(oud: dict[str, Any] | None, kop: Document) -> Boeking | None:
            oud = oud or {}
            if command_id in (oud.get("commands") or []):
                return None
            nieuw = {veld: (waarde if waarde is not None else int(oud.get(veld, 0)))
                     for veld, waarde in totalen.items()}
            return Boeking({**nieuw, "versie": int(oud.get("versie", 0)) + 1,
                            "commands": [*(oud.get("commands") or []), command_id]},
                           {veld: nieuw[veld] - int(oud.get(veld, 0)) for veld in nieuw})

        entry = await self._boek(lid, FINANCIEEL, aanvraag_id, besluit)  # None only when there is no ledger
        if entry is None:
            raise LookupError(f"budgetten/{lid} does not exist")
        return entry

    async def _boek(self, lid: str, soort: str, aanvraag_id: str,
                    besluit: Callable[[dict[str, Any] | None, Document], Boeking | None]) -> dict[str, Any] | None:
        """One change of an aanvraag's entry and of the ledger totals, exactly once.

        The entries of an aanvraag are a document of their own (``post_id``, with a version), and the ledger's head
        names the last booking of the aanvraag's group (``groep``) in ``laatste.<group>`` (``"<version>:<id>:
        <aanvraag>"``) and holds what it makes of the entry in ``boeking.<group>`` (``{door, soort, post}``). A
        booking is two writes: the head (the totals move, and the group's ``laatste`` and ``boeking`` name it,
        checked on the ``laatste`` it read: this makes it count), then the entry applied to the aanvraag's
        document at the next version (checked on the version it read; inserted for a first booking). The head moves
        a group past a booking only after that booking was applied (whoever finds it behind applies it first from
        the head, ``_haal_in``), so only a document that a group's ``laatste`` names can be behind: a crash between
        the writes loses nothing and a retry books nothing twice; of two bookings of a group at once, the head's
        check lets one through and the other starts again. Returns the entry as it stands afterwards (None when
        there is none); ``besluit`` sees the entry and the head and returns the booking, or None when there is
        nothing to do (raising refuses).

        Until session 14 a booking first wrote its intent into the aanvraag's document (``voornemens.<id>``) and the
        head named only the booking: three writes. A head whose ``laatste`` names such a booking is still applied
        from the document's intent (``_voornemen``). Until session 11 the entries were spread over 256 buckets
        whose stands the head kept (ADR 0010)."""
        pid, g = post_id(lid, aanvraag_id), groep(aanvraag_id)
        for _ in range(200):
            kop = await self.budgetten.find_one({"_id": lid}, {f"laatste.{g}": 1, f"boeking.{g}": 1,
                                                               "beschikbaar_cents": 1, "indeling": 1})
            if kop is None:
                return None
            if kop.get("indeling") != INDELING:
                await self.deel_in(lid)
                continue
            laatste = (kop.get("laatste") or {}).get(g)
            versie_l, door_l, aanvraag_l = _laatste(laatste)
            post = await self.posten.find_one({"_id": pid}) or {}
            if aanvraag_l:
                vorige = post if aanvraag_l == aanvraag_id else await self.posten.find_one(
                    {"_id": post_id(lid, aanvraag_l)}, {"versie": 1, f"voornemens.{door_l}": 1}) or {}
                if int(vorige.get("versie", 0)) < versie_l:  # the last booking is not applied yet
                    await self._haal_in(kop, g, post_id(lid, aanvraag_l), vorige, laatste)
                    continue
            versie = int(post.get("versie", 0))
            oud: dict[str, Any] | None = post.get(soort)
            boeking = besluit(oud, kop)
            if boeking is None:
                return oud
            door = secrets.token_hex(6)
            nieuw = f"{versie + 1}:{door}:{aanvraag_id}"
            voornemen = {"door": door, "soort": soort, "post": boeking.post}
            result = await self.budgetten.update_one(
                {"_id": lid, f"laatste.{g}": laatste if laatste else {"$exists": False}, **boeking.voorwaarde},
                {"$inc": {**boeking.totalen, "revision": 1},
                 "$set": {f"laatste.{g}": nieuw, f"boeking.{g}": voornemen}})
            if result.matched_count == 1:
                await self._haal_in({"boeking": {g: voornemen}}, g, pid, post, nieuw)
                return boeking.post
        raise RuntimeError(f"budgetten/{lid}: too many concurrent changes to {soort}.{aanvraag_id}")

    async def _haal_in(self, kop: Document, g: str, pid: str, post: Document, laatste: str | None) -> None:
        """Apply to the aanvraag's document (as read: ``post``; ``{}``: none yet) the booking that the head's
        ``laatste`` names (``_voornemen``), checked on the document's version: of two processes that both find it
        behind, one writes and the other's write matches nothing (or, for a first booking, its insert finds the
        document there). Intents left in the document by bookings of before session 14 go with it."""
        versie, door, aanvraag = _laatste(laatste)
        voornemen = _voornemen(kop, g, door, post)
        if not post:
            inhoud = {} if voornemen.get("post") is None else {voornemen["soort"]: voornemen["post"]}
            if await self._nieuwe_post(pid, pid.removesuffix(f"/a/{aanvraag}"), aanvraag,
                                       {"versie": versie, **inhoud}):
                return
            post = await self.posten.find_one({"_id": pid}, {"versie": 1}) or {}  # inserted meanwhile
            if int(post.get("versie", 0)) >= versie:
                return
        wijziging: dict[str, Any] = {"$set": {"versie": versie, "voornemens": {}}}
        if voornemen.get("post") is None:
            wijziging["$unset"] = {voornemen["soort"]: ""}
        else:
            wijziging["$set"][voornemen["soort"]] = voornemen["post"]
        await self.posten.update_one({"_id": pid, "versie": _op(versie - 1)}, wijziging)

    async def _nieuwe_post(self, pid: str, lid: str, aanvraag_id: str, velden: Document) -> bool:
        """Insert an aanvraag's document that does not exist yet; False when it does. (Not an upsert on ``{_id,
        versie}``: FerretDB v1 answers an upsert with any filter beyond ``_id`` by decoding every document.)"""
        post = nested(velden, {"_id": pid, "ledger": lid, "aanvraag": aanvraag_id, "voornemens": {}})
        try:
            await self.posten.insert_one(post)
        except DuplicateKeyError:
            return False
        return True

    async def _post(self, kop: Document, lid: str, soort: str, aanvraag_id: str) -> dict[str, Any] | None:
        """The aanvraag's entry: its document's, or the booking the head names when the document is behind."""
        g = groep(aanvraag_id)
        versie, door, aanvraag = _laatste((kop.get("laatste") or {}).get(g))
        projectie = {soort: 1, "versie": 1}
        if aanvraag == aanvraag_id:
            projectie[f"voornemens.{door}"] = 1
        post = await self.posten.find_one({"_id": post_id(lid, aanvraag_id)}, projectie) or {}
        if aanvraag == aanvraag_id and int(post.get("versie", 0)) < versie:
            voornemen = _voornemen(kop, g, door, post)
            if voornemen.get("soort") == soort:
                nog: dict[str, Any] | None = voornemen.get("post")
                return nog
        entry: dict[str, Any] | None = post.get(soort)
        return entry

    async def deel_in(self, lid: str | None = None) -> int:
        """Move the entries of ledgers written before the documents per aanvraag (in the ledger itself,
        ``reserveringen.<id>`` and ``financieel.<id>``, or in 256 buckets, ADR 0010) into a document per aanvraag;
        every ledger, or only ``lid``. Returns how many ledgers it moved. Safe to repeat and to run in several
        processes at once: a document is written only while no booking has touched it, and the ledger only at the
        revision the entries were read from."""
        async def verhuis(kop: Document) -> bool:
            kid = kop["_id"]
            if kop.get("indeling") == EMMERS_256:  # a scan of the buckets, once
                alle = _uit_emmers(kop, await self.posten.find({"ledger": kid}).to_list(None))
            else:
                alle = {RESERVERINGEN: kop.get(RESERVERINGEN) or {}, FINANCIEEL: kop.get(FINANCIEEL) or {}}
            for aid in {*alle[RESERVERINGEN], *alle[FINANCIEEL]}:
                inhoud = {soort: alle[soort][aid] for soort in (RESERVERINGEN, FINANCIEEL) if aid in alle[soort]}
                if not await self._nieuwe_post(post_id(kid, aid), kid, aid, inhoud):
                    await self.posten.update_one({"_id": post_id(kid, aid), "versie": {"$exists": False}},
                                                 {"$set": inhoud})
            result = await self.budgetten.update_one(
                {"_id": kid, "revision": kop.get("revision", 1)},
                {"$unset": {RESERVERINGEN: "", FINANCIEEL: "", "emmers": ""}, "$inc": {"revision": 1},
                 "$set": {"indeling": INDELING, "aantal_reserveringen": len(alle[RESERVERINGEN])}})
            if result.matched_count == 1:
                await self.posten.delete_many({"ledger": kid, "aanvraag": {"$exists": False}})  # the buckets
            return result.matched_count == 1

        return await move_to_layout(self.budgetten, INDELING, verhuis, lid)

    async def posten_van(self, koppen: list[Document]) -> list[Document]:
        """The ledgers with every entry (``reserveringen`` and ``financieel`` by aanvraag id), as the reports
        and the checks read them: the documents of each, a scan of ``budgetposten``."""
        posten = await self.posten.find({}).to_list(None)
        return [met_posten(kop, [p for p in posten if p.get("ledger") == kop["_id"]]) for kop in koppen]

    async def report_sources(self) -> tuple[list[Document], list[Document], list[Document]]:
        """Zaken, reservation requests and ledgers as the reports need them (scans; a year is small)."""
        zaken = await self.zaken.collection.find(
            {}, {"_id": 1, "regeling": 1, "gemeente_code": 1, "aanvraagdatum": 1, "beschikkingen": 1}).to_list(None)
        verzoeken = await self.verzoeken.collection.find(
            {}, {"_id": 1, "regeling": 1, "budgetperiode": 1, "gemeente_code": 1, "uitkomst": 1}).to_list(None)
        return zaken, verzoeken, await self.posten_van(await self.all_ledgers())

    async def all_ledgers(self) -> list[Document]:
        return await self.budgetten.find({}).to_list(None)

    async def get_ledger(self, lid: str) -> Document | None:
        return await self.budgetten.find_one({"_id": lid})

    async def set_plafond(self, lid: str, nieuw: int, expected_revision: int | None) -> Document | None:
        """Set the ceiling, moving ``beschikbaar`` by the difference in one guarded update.

        Returns the updated ledger; None when the guard missed (changed meanwhile, or the new ceiling is
        below what is reserved and committed): the caller re-reads to tell which.
        """
        doc = await self.budgetten.find_one({"_id": lid})
        if doc is None:
            return None
        verschil = nieuw - doc["plafond_cents"]
        guard: dict[str, Any] = {"_id": lid, "plafond_cents": doc["plafond_cents"],
                                 "beschikbaar_cents": {"$gte": max(0, -verschil)}}
        if expected_revision is not None:
            guard["revision"] = expected_revision
        updated: Document | None = await self.budgetten.find_one_and_update(
            guard, {"$set": {"plafond_cents": nieuw}, "$inc": {"beschikbaar_cents": verschil, "revision": 1}},
            return_document=ReturnDocument.AFTER)  # FerretDB v1: no projection in findAndModify
        return updated

    async def create_ledger(self, regeling: str, periode: str, plafond_cents: int) -> bool:
        try:
            await self.budgetten.insert_one(
                {"_id": ledger_id(regeling, periode), **_nieuw_grootboek(regeling, periode, plafond_cents)})
        except DuplicateKeyError:
            return False
        return True

    # --------------------------------------------------------------------------------------------- caps

    async def ensure_cap(self, regeling: Regeling, gemeente_code: str) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self.caps.update_one(
                {"_id": cap_id(regeling.id, gemeente_code)},
                {"$setOnInsert": {"regeling": regeling.id, "gemeente_code": gemeente_code,
                                  "maximum": regeling.cap_per_gemeente, "beschikbaar": regeling.cap_per_gemeente,
                                  "reserveringen": {}}},
                upsert=True)

    async def reserve_cap(self, cid: str, aanvraag_id: str, at: datetime) -> bool:
        key = f"reserveringen.{aanvraag_id}"
        result = await self.caps.update_one(
            {"_id": cid, "beschikbaar": {"$gte": 1}, key: {"$exists": False}},
            {"$inc": {"beschikbaar": -1}, "$set": {key: at}})
        if result.matched_count == 1:
            return True
        doc = await self.caps.find_one({"_id": cid}, {key: 1})
        return doc is not None and aanvraag_id in (doc.get("reserveringen") or {})

    async def release_cap(self, cid: str, aanvraag_id: str) -> None:
        key = f"reserveringen.{aanvraag_id}"
        await self.caps.update_one({"_id": cid, key: {"$exists": True}},
                                   {"$unset": {key: ""}, "$inc": {"beschikbaar": 1}})

    # -------------------------------------------------------------------------------- allocator support

    # The order of receipt (allocator.py): one document per volgnummer (``_id`` nr-<number>) and the head
    # ``kop`` (``tot``: every number up to it is done; ``bekend``: the highest number announced or asked for).
    # Every filter is {_id} or {_id, revision}: FerretDB v1 scans the collection for any other filter, and the
    # local stack's proxy answers {_id, revision} without a scan (deploy/ferretdb/cas.go).

    async def kop(self) -> Document:
        return await self.volgorde.get(KOP) or {"_id": KOP, "tot": 0, "bekend": 0, "revision": 0}

    async def ken_nummer(self, nummer: int) -> None:
        """Raise ``bekend`` to ``nummer`` (``$max`` never lowers it; it leaves ``revision``, which guards ``tot``).
        One write without a read, like notifications' dossier upsert: not an aggregate change (ADR 0009)."""
        await self.volgorde.collection.update_one(
            {"_id": KOP}, {"$max": {"bekend": nummer}, "$setOnInsert": {"tot": 0, "revision": 1}}, upsert=True)

    async def schuif_op(self, van: int, naar: int, kop: Document | None = None) -> Document | None:
        """Move the head from ``van`` to ``naar``, checked on its revision (``kop``: the head as the caller knows
        it, from ``kop()`` or the previous move). Returns the head as written, or None when the head is not at
        ``van`` (someone else moved it)."""
        def schuif(doc: Document) -> None:
            if int(doc.get("tot", 0)) != van:
                raise Unchanged
            doc["tot"] = naar

        try:  # a head never written (revision 0) is inserted, with ``bekend`` at least where it now stands
            done = await self._kop.run(KOP, schuif, create=lambda: {"_id": KOP, "tot": 0, "bekend": naar},
                                       current=READ if kop is None else kop if kop.get("revision") else None)
        except ConcurrencyError:
            return None  # moved again and again meanwhile: the caller reads the head anew
        return None if done.repeated else done.doc

    async def plaats(self, nummer: int) -> Document | None:
        return await self.volgorde.get(plaats_id(nummer))

    async def plaats_zetten(self, nummer: int, van: tuple[str, ...], naar: str, velden: Document,
                            gelezen: Document | None = None) -> str:
        """Move the place ``nummer`` from a status in ``van`` (or from absent, when ``van`` holds AFWEZIG) to
        ``naar``, checked on its revision (``gelezen``: the place as the caller just read it). Returns the status
        it has afterwards (``naar`` when this call moved it)."""
        def zet(plaats: Document) -> None:
            if plaats.get("status", AFWEZIG) not in van:
                raise Unchanged
            plaats.update(status=naar, **velden)

        # the first attempt trusts the caller's read (a copy: the change works on it); only an announcement expects
        # no place, and inserts it without a read
        try:
            done = await self._plaatsen.run(
                plaats_id(nummer), zet, create=(lambda: {"_id": plaats_id(nummer)}) if AFWEZIG in van else None,
                current=dict(gelezen) if gelezen is not None else None if van == (AFWEZIG,) else READ)
        except Missing:
            return AFWEZIG
        return str(done.doc.get("status", AFWEZIG)) if done.repeated else naar

    async def take_lease(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        """Hold the named lease until ``until`` if it is free, expired or already ours (revision-checked)."""
        doc = await self.leases.find_one({"_id": name})
        if doc is None:
            try:
                await self.leases.insert_one({"_id": name, "holder": holder, "until": until, "revision": 1})
            except DuplicateKeyError:
                return False
            return True
        if doc["holder"] != holder and doc["until"] > now:
            return False
        result = await self.leases.update_one(
            {"_id": name, "revision": doc["revision"]},
            {"$set": {"holder": holder, "until": until}, "$inc": {"revision": 1}})
        return result.matched_count == 1

    async def drop_lease(self, name: str, holder: str, now: datetime) -> None:
        doc = await self.leases.find_one({"_id": name})
        if doc is not None and doc["holder"] == holder:
            await self.leases.update_one({"_id": name, "revision": doc["revision"]},
                                         {"$set": {"until": now},
                                          "$inc": {"revision": 1}})

