"""Hand-written mapping between the Aanvraag aggregate and its MongoDB documents.

Collections: ``aanvragen`` (one document per application: state, document metadata, encrypted BSN, outbox)
and ``documenten`` (content of uploaded and decision documents, by id). Every look-up is by ``_id``;
FerretDB v1 scans the whole collection for any other filter.
"""

from __future__ import annotations

import contextlib
from datetime import date, datetime
from typing import Any

from bson import Binary
from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from intake.domain import (
    AANVRAAG_VOLGNUMMER_TOEGEKEND,
    Aanvraag,
    Besluit,
    DocumentInfo,
    Doelgroep,
    Herstel,
    Modelgetrouwheid,
    Ondertekening,
    Stopbericht,
    Verlengingsverzoek,
)
from intake.stand import Stand
from servicekit.broker import EVENTS
from servicekit.envelope import new_event
from servicekit.store import Document, DocumentStore, DuplicateKeyError
from servicekit.unit_of_work import Mapper

SERVICE = "intake"
VERTROUWELIJK = "vertrouwelijk"
# What a list or read never loads: the ciphertext of the BSN and the relay's bookkeeping.
_PRIVATE = {"bsn_versleuteld": 0, "outbox": 0, "applied": 0, "request_hash": 0, "idempotency_keys": 0}


class AanvraagRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.store = DocumentStore(db, "aanvragen")
        self.tellers = db["tellers"]

    @property
    def collection(self) -> Any:
        return self.store.collection

    async def ensure_indexes(self) -> None:
        await self.collection.create_index("has_outbox")
        await self.collection.create_index([("ggz_kvk_nummer", 1), ("ontvangen_op", DESCENDING)])
        await self.collection.create_index([("gemeente_code", 1), ("ontvangen_op", DESCENDING)])

    async def add(self, aanvraag: Aanvraag, extra: Document) -> Document:
        """Insert the application with its events in the outbox, in one write. Raises DuplicateKeyError."""
        stored = await self.store.insert({**to_doc(aanvraag), **extra}, take_events(aanvraag))
        aanvraag.revision = stored["revision"]
        return stored

    async def get_document(self, aanvraag_id: str) -> Document | None:
        return await self.store.get(aanvraag_id)

    async def volgend_volgnummer(self) -> int:
        """The next place in the order of receipt: one counter found by ``_id``, raised atomically. A number
        taken by a process that crashes before it writes the application is a gap grants skips (allocator.py)."""
        doc = await self.tellers.find_one_and_update({"_id": "volgnummer"}, {"$inc": {"n": 1}}, upsert=True,
                                                     return_document=ReturnDocument.AFTER)
        assert doc is not None  # an upsert that returns the document after
        return int(doc["n"])

    async def find(self, filter_: Document, limit: int, offset: int) -> list[Aanvraag]:
        cursor = self.collection.find(filter_, _PRIVATE).sort("ontvangen_op", DESCENDING).skip(offset).limit(limit)
        return [from_doc(d) for d in await cursor.to_list(None)]


class DocumentContents:
    """The bytes of documents, one MongoDB document each (well under the 16 MB limit)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["documenten"]

    async def put(self, info: DocumentInfo, aanvraag_id: str, content: bytes, uploaded_by: str) -> None:
        """Store once; a second put with the same id (a redelivered command) keeps the first."""
        with contextlib.suppress(DuplicateKeyError):
            await self.collection.insert_one({
                "_id": info.id, "aanvraag_id": aanvraag_id, "soort": info.soort, "bestandsnaam": info.bestandsnaam,
                "content_type": info.content_type, "sha256": info.sha256, "grootte": info.grootte,
                "vertrouwelijkheid": VERTROUWELIJK, "uploaded_at": info.ontvangen_op, "uploaded_by": uploaded_by,
                "content": Binary(content),
            })

    async def get(self, document_id: str) -> bytes | None:
        doc = await self.collection.find_one({"_id": document_id}, {"content": 1})
        return bytes(doc["content"]) if doc else None


def take_events(aanvraag: Aanvraag) -> list[Any]:
    # The volgnummer announcement is for grants only: without a subject the engine drops it at once instead of
    # keeping it in the case as a message nothing waits for.
    events = [(new_event(e.type, service=SERVICE, data=e.data,
                         subject=None if e.type == AANVRAAG_VOLGNUMMER_TOEGEKEND else aanvraag.id), EVENTS)
              for e in aanvraag.events]
    aanvraag.events.clear()
    return events


def _date(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _parse_date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def document_info_to_doc(d: DocumentInfo) -> Document:
    return {"id": d.id, "soort": d.soort, "bestandsnaam": d.bestandsnaam, "content_type": d.content_type,
            "grootte": d.grootte, "sha256": d.sha256, "ontvangen_op": d.ontvangen_op}


def to_doc(a: Aanvraag) -> Document:
    return {
        "_id": a.id,
        "client_referentie": a.client_referentie,
        "gemeente_code": a.gemeente_code,
        "woongemeente_code": a.woongemeente_code,
        "traject_type": a.traject_type,
        "aanvraagdatum": a.aanvraagdatum.isoformat(),
        "gewenste_startdatum": a.gewenste_startdatum.isoformat(),
        "ggz_kvk_nummer": a.ggz_kvk_nummer,
        "ggz_agb_code": a.ggz_agb_code,
        "ontvangen_op": a.ontvangen_op,
        "ondertekening": {"kandidaat": a.ondertekening.kandidaat, "ggz_instelling": a.ondertekening.ggz_instelling},
        "modelgetrouwheid": None if a.modelgetrouwheid is None else {
            "certificaatnummer": a.modelgetrouwheid.certificaatnummer,
            "geldig_tot": _date(a.modelgetrouwheid.geldig_tot)},
        "doelgroep": {"uitkering": a.doelgroep.uitkering, "wil_betaald_werk": a.doelgroep.wil_betaald_werk,
                      "andere_reintegratie": a.doelgroep.andere_reintegratie},
        "toelichting": a.toelichting,
        "status": a.status,
        "documenten": [document_info_to_doc(d) for d in a.documenten],
        "herstel": None if a.herstel is None else {
            "ontbrekend": a.herstel.ontbrekend, "uiterlijk": a.herstel.uiterlijk.isoformat(),
            "gevraagd_op": a.herstel.gevraagd_op},
        "aangevuld_op": a.aangevuld_op,
        "volledig_ontvangen_op": a.volledig_ontvangen_op,
        "volgnummer": a.volgnummer,
        "doorgezonden_van": a.doorgezonden_van,
        "ingetrokken_op": a.ingetrokken_op,
        "besluit": _besluit_doc(a.besluit),
        "vaststelling": _besluit_doc(a.vaststelling),
        "beschikkingen": [_besluit_doc(b) for b in a.beschikkingen],
        "verlengingsverzoeken": [{"id": v.id, "maanden": v.maanden, "gevraagd_op": v.gevraagd_op,
                                  "toelichting": v.toelichting} for v in a.verlengingsverzoeken],
        "stopbericht": None if a.stopbericht is None else {
            "einddatum": a.stopbericht.einddatum.isoformat(), "gemeld_op": a.stopbericht.gemeld_op},
        "eindverslag_document_id": a.eindverslag_document_id,
        "eindverslag_ingediend_op": a.eindverslag_ingediend_op,
        "stand": a.stand.to_doc() if isinstance(a.stand, Stand) else None,
    }


def _besluit_doc(b: Besluit | None) -> Document | None:
    if b is None:
        return None
    return {"soort": b.soort, "datum": b.datum, "bezwaartermijn_einde": b.bezwaartermijn_einde,
            "bedrag_cents": b.bedrag_cents, "document_id": b.document_id, "beschikking_id": b.beschikking_id,
            "kenmerk": b.kenmerk, "registratie_id": b.registratie_id, "gronden": b.gronden}


def millis(moment: datetime) -> datetime:
    """BSON keeps milliseconds: cut there, so what an event or a response says equals what is stored."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def from_doc(doc: Document) -> Aanvraag:
    mg = doc.get("modelgetrouwheid")
    herstel = doc.get("herstel")
    besluit = doc.get("besluit")
    stopbericht = doc.get("stopbericht")
    return Aanvraag(
        id=doc["_id"],
        client_referentie=doc["client_referentie"],
        gemeente_code=doc["gemeente_code"],
        woongemeente_code=doc["woongemeente_code"],
        traject_type=doc["traject_type"],
        aanvraagdatum=date.fromisoformat(doc["aanvraagdatum"]),
        gewenste_startdatum=date.fromisoformat(doc["gewenste_startdatum"]),
        ggz_kvk_nummer=doc["ggz_kvk_nummer"],
        ggz_agb_code=doc.get("ggz_agb_code"),
        ontvangen_op=doc["ontvangen_op"],
        ondertekening=Ondertekening(**doc["ondertekening"]),
        modelgetrouwheid=None if mg is None else Modelgetrouwheid(mg.get("certificaatnummer"),
                                                                  _parse_date(mg.get("geldig_tot"))),
        doelgroep=Doelgroep(**doc["doelgroep"]),
        toelichting=doc.get("toelichting"),
        status=doc["status"],
        documenten=[DocumentInfo(**d) for d in doc.get("documenten") or []],
        herstel=None if herstel is None else Herstel(herstel["ontbrekend"], date.fromisoformat(herstel["uiterlijk"]),
                                                     herstel["gevraagd_op"]),
        aangevuld_op=doc.get("aangevuld_op"),
        volledig_ontvangen_op=doc.get("volledig_ontvangen_op"),
        volgnummer=doc.get("volgnummer"),
        doorgezonden_van=doc.get("doorgezonden_van"),
        ingetrokken_op=doc.get("ingetrokken_op"),
        besluit=None if besluit is None else Besluit(**besluit),
        vaststelling=None if doc.get("vaststelling") is None else Besluit(**doc["vaststelling"]),
        beschikkingen=[Besluit(**b) for b in doc.get("beschikkingen") or []],
        verlengingsverzoeken=[Verlengingsverzoek(**v) for v in doc.get("verlengingsverzoeken") or []],
        stopbericht=None if stopbericht is None else Stopbericht(date.fromisoformat(stopbericht["einddatum"]),
                                                                 stopbericht["gemeld_op"]),
        eindverslag_document_id=doc.get("eindverslag_document_id"),
        eindverslag_ingediend_op=doc.get("eindverslag_ingediend_op"),
        stand=Stand.from_doc(doc["stand"]) if doc.get("stand") else None,
        revision=doc.get("revision", 0),
    )


#: The application aggregate through servicekit's unit of work: its fields, and the events it recorded.
AANVRAAG = Mapper(from_doc, to_doc, take_events)
