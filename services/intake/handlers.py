"""Use cases of intake: the portal's actions, shared by every entry point (the engine's commands: ``opdrachten``).

Every change is one revision-checked write of the application document together with the events it causes
(portal) or the command's reply (engine, through ``servicekit.commands.apply_command``, which also records
the command id so a redelivered command changes nothing and is answered with the same reply id).
Document contents are written first, under an id fixed by the request or command, so a retry after a crash
rewrites the same document instead of adding a second one.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from intake import domain
from intake.bsn import BsnCipher
from intake.domain import (
    Aanvraag,
    DocumentInfo,
    DomainError,
    Gemeenteregister,
    InvalidValue,
    Stopbericht,
    Verlengingsverzoek,
)
from intake.messages import (
    AanvraagAanvullen,
    AanvraagIndienen,
    StopberichtMelden,
    VerlengingVragen,
)
from intake.messages import Doelgroep as DoelgroepIn
from intake.messages import Modelgetrouwheid as ModelgetrouwheidIn
from intake.messages import Ondertekening as OndertekeningIn
from intake.repository import AANVRAAG, AanvraagRepository, DocumentContents, from_doc, millis
from intake.stand import ontvangstbevestiging
from servicekit.auth import Principal
from servicekit.kalender import amsterdam_dag
from servicekit.logging import get_logger
from servicekit.relay import Wake, no_relay
from servicekit.store import Document, DuplicateKeyError
from servicekit.unit_of_work import Missing, RevisionMismatch, UnitOfWork

log = get_logger(__name__)

PDF = "application/pdf"
TEXT = "text/plain; charset=utf-8"
PDF_MAGIC = b"%PDF-"
MAX_WRITE_RETRIES = 20
IDEMPOTENCY_MEMORY = 50  # Idempotency-Keys an application remembers
_FILENAME = re.compile(r"^[^/\\\x00-\x1f\x7f]{1,200}$")


class InvalidInput(Exception):
    """400: fields that passed the schema but not the rules (e.g. a gemeente not valid on the date)."""

    def __init__(self, params: list[dict[str, str]]) -> None:
        super().__init__(", ".join(p["name"] for p in params))
        self.params = params


class NotFound(Exception):
    pass


class Forbidden(Exception):
    pass


class Conflict(Exception):
    pass


class PreconditionFailed(Exception):
    """412: the If-Match revision is not the stored one (someone changed the application meanwhile)."""


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before for a different request body."""


@dataclass
class Submitted:
    aanvraag: Aanvraag
    created: bool
    #: The answer to the first submission (id, status, ontvangenOp, gemeenteCode, woongemeenteCode, trajectType):
    #: a replay with the same Idempotency-Key and body gets exactly this again, whatever happened since.
    bevestiging: dict[str, Any] = field(default_factory=dict)


@dataclass
class IntakeHandlers:
    aanvragen: AanvraagRepository
    documenten: DocumentContents
    gemeenten: Gemeenteregister
    cipher: BsnCipher
    max_document_bytes: int
    #: Uploads per application (IPSFLOW_INTAKE_MAX_DOCUMENTS); more is 409: storage per case stays bounded.
    max_documenten: int = 20
    #: Uploads an application must have to be complete (IPSFLOW_INTAKE_VEREISTE_BIJLAGEN): whether a submission or
    #: an aanvulling completes it, and so takes its place in the order of receipt (the volgnummer).
    vereiste_bijlagen: tuple[str, ...] = ()
    wake: Wake = no_relay
    clock: Callable[[], datetime] = field(default=lambda: millis(datetime.now(UTC)))

    # --- reading ---

    async def read(self, principal: Principal, aanvraag_id: str) -> Aanvraag:
        """The application if ``principal`` may read it; NotFound / Forbidden otherwise. Audit-logged."""
        doc = await self.aanvragen.get_document(aanvraag_id)
        if doc is None:
            raise NotFound(aanvraag_id)
        aanvraag = from_doc(doc)
        if not may_read(principal, aanvraag) and not doorgezonden_door(principal, aanvraag):
            log.warning("aanvraag.toegang_geweigerd", aanvraag_id=aanvraag_id, user=principal.subject)
            raise Forbidden("Deze aanvraag hoort niet bij uw organisatie.")
        log.info("aanvraag.gelezen", aanvraag_id=aanvraag_id, user=principal.subject, org=principal.org)
        return aanvraag

    async def list_for(self, principal: Principal, limit: int, offset: int) -> list[Aanvraag]:
        if principal.org_type == "ggz":
            filter_: Document = {"ggz_kvk_nummer": principal.org}
        elif principal.org_type == "gemeente":
            # those addressed to it now, and those it forwarded (its own record of the forwarding, Awb 2:3)
            filter_ = {"$or": [{"gemeente_code": principal.org}, {"doorgezonden_van": principal.org}]}
        elif principal.org_type == "beheer":
            filter_ = {}
        else:
            raise Forbidden("Aanvragen zijn alleen in te zien voor ggz-instellingen, gemeenten en beheer.")
        return await self.aanvragen.find(filter_, limit, offset)

    async def document_content(self, principal: Principal, aanvraag_id: str,
                               document_id: str) -> tuple[DocumentInfo, bytes]:
        aanvraag = await self.read(principal, aanvraag_id)
        if not may_read(principal, aanvraag):
            raise Forbidden("Deze aanvraag is doorgezonden; de documenten zijn bij de bevoegde gemeente.")
        info = next((d for d in aanvraag.documenten if d.id == document_id), None)
        content = await self.documenten.get(document_id) if info else None
        if info is None or content is None:
            raise NotFound(document_id)
        log.info("document.gelezen", aanvraag_id=aanvraag_id, document_id=document_id, user=principal.subject)
        return info, content

    # --- portal actions ---

    async def submit(self, principal: Principal, cmd: AanvraagIndienen, idempotency_key: str | None) -> Submitted:
        """Store a new application, its encrypted BSN and its ``ingediend`` event in one write.

        Idempotent per (ggz, Idempotency-Key): the key fixes the application id, so a retried POST finds the
        stored application instead of creating a second one. Without a key every call is a new application.
        """
        if principal.org_type != "ggz":
            raise Forbidden("Alleen een ggz-instelling dient aanvragen in.")
        if cmd.ggz_kvk_nummer != principal.org:
            raise Forbidden("Het KvK-nummer in de aanvraag is niet dat van uw organisatie.")
        now = self.clock()
        today = amsterdam_dag(now)
        aanvraagdatum = cmd.aanvraagdatum or today
        invalid = []
        if aanvraagdatum > today:
            invalid.append({"name": "aanvraagdatum", "code": "in_de_toekomst", "reason": "ligt na vandaag"})
        for name, code in (("gemeenteCode", cmd.gemeente_code), ("woongemeenteCode", cmd.woongemeente_code)):
            if not self.gemeenten.geldig_op(code, aanvraagdatum):
                invalid.append({"name": name, "code": "gemeente_ongeldig",
                                "reason": "geen gemeente op de aanvraagdatum (CBS-indeling)"})
        startdatum = domain.startdatum_ongeldig(aanvraagdatum, cmd.gewenste_startdatum)
        if startdatum is not None:
            invalid.append({"name": startdatum.name, "code": startdatum.code, "reason": startdatum.reason})
        if invalid:
            raise InvalidInput(invalid)

        request_hash = self.cipher.mac(cmd.model_dump_json().encode())
        if idempotency_key:
            aanvraag_id = str(uuid.uuid5(uuid.NAMESPACE_URL,
                                         f"ipsflow:aanvraag:{cmd.ggz_kvk_nummer}:{idempotency_key}"))
        else:
            aanvraag_id = str(uuid.uuid4())
        aanvraag = Aanvraag.indienen(
            id=aanvraag_id, client_referentie=cmd.client_referentie, gemeente_code=cmd.gemeente_code,
            woongemeente_code=cmd.woongemeente_code, traject_type=cmd.traject_type, aanvraagdatum=aanvraagdatum,
            gewenste_startdatum=cmd.gewenste_startdatum, ggz_kvk_nummer=cmd.ggz_kvk_nummer, ontvangen_op=now,
            ondertekening=_ondertekening(cmd.ondertekening), doelgroep=_doelgroep(cmd.doelgroep),
            modelgetrouwheid=_modelgetrouwheid(cmd.modelgetrouwheid), ggz_agb_code=cmd.ggz_agb_code,
            toelichting=cmd.toelichting,
        )
        bevestiging = ontvangstbevestiging(aanvraag)
        # complete at once: its place in the order of receipt now (a retried POST finds the stored one first, so
        # it takes no number it would not use)
        if aanvraag.mist_volgnummer(self.vereiste_bijlagen) and not (
                idempotency_key and await self.aanvragen.get_document(aanvraag_id) is not None):
            aanvraag.volgnummer_toekennen(await self.aanvragen.volgend_volgnummer())
        try:
            stored = await self.aanvragen.add(aanvraag, {"request_hash": request_hash,
                                                "bsn_versleuteld": self.cipher.encrypt(cmd.bsn, aanvraag_id),
                                                "ingediend_door": principal.subject,
                                                "ontvangstbevestiging": bevestiging})
        except DuplicateKeyError:
            existing = await self.aanvragen.get_document(aanvraag_id)
            if existing is None or existing.get("request_hash") != request_hash:
                raise IdempotencyConflict(aanvraag_id) from None
            earlier = from_doc(existing)
            # stored before the answer was kept: the first answer follows from what never changes
            first = existing.get("ontvangstbevestiging") or {
                **ontvangstbevestiging(earlier), "status": domain.INGEDIEND,
                "gemeenteCode": earlier.doorgezonden_van or earlier.gemeente_code}
            return Submitted(earlier, created=False, bevestiging=first)
        log.info("aanvraag.ingediend", aanvraag_id=aanvraag_id, user=principal.subject)
        self.wake(aanvraag_id, self.aanvragen.collection, stored)
        return Submitted(aanvraag, created=True, bevestiging=bevestiging)

    async def upload(self, principal: Principal, aanvraag_id: str, soort: str, bestandsnaam: str | None,
                     content_type: str, content: bytes, idempotency_key: str | None) -> DocumentInfo:
        """Store a PDF of the application (content first, then its metadata on the application)."""
        naam = bestandsnaam or f"{soort}.pdf"
        invalid = self._pdf_invalid(content_type, content, naam)
        if soort not in domain.UPLOAD_SOORTEN:
            invalid.append({"name": "soort", "code": "literal_error",
                            "reason": "een van " + ", ".join(domain.UPLOAD_SOORTEN)})
        if invalid:
            raise InvalidInput(invalid)
        aanvraag = await self._own(principal, aanvraag_id)
        if aanvraag.status in domain.FINAL:
            raise Conflict(f"De aanvraag is {aanvraag.status}; er kunnen geen documenten meer bij.")
        document_id = _id_for("document", aanvraag_id, idempotency_key)
        self._room_for_upload(aanvraag, document_id)
        info = DocumentInfo(id=document_id, soort=soort, bestandsnaam=naam, content_type=PDF, grootte=len(content),
                            sha256=hashlib.sha256(content).hexdigest(), ontvangen_op=self.clock())
        await self.documenten.put(info, aanvraag_id, content, principal.subject)

        def add(a: Aanvraag) -> None:
            self._room_for_upload(a, document_id)  # again on the stored revision: two uploads at once
            a.document_toevoegen(info)

        stored = await self._change(aanvraag_id, add)
        log.info("document.ontvangen", aanvraag_id=aanvraag_id, document_id=document_id, user=principal.subject)
        return next(d for d in stored.documenten if d.id == document_id)

    def _room_for_upload(self, aanvraag: Aanvraag, document_id: str) -> None:
        uploads = [d for d in aanvraag.documenten if d.soort in domain.UPLOAD_SOORTEN]
        if len(uploads) >= self.max_documenten and all(d.id != document_id for d in uploads):
            raise Conflict(f"Deze aanvraag heeft al {self.max_documenten} documenten; meer kunnen er niet bij.")

    def _pdf_invalid(self, content_type: str, content: bytes, bestandsnaam: str) -> list[dict[str, str]]:
        invalid = []
        media_type = content_type.split(";")[0].strip().lower()
        if media_type != PDF:
            invalid.append({"name": "bestand", "code": "content_type", "reason": "alleen application/pdf"})
        elif not content:
            invalid.append({"name": "bestand", "code": "leeg", "reason": "het bestand is leeg"})
        elif len(content) > self.max_document_bytes:
            invalid.append({"name": "bestand", "code": "too_large",
                            "reason": f"groter dan {self.max_document_bytes} bytes"})
        elif not content.startswith(PDF_MAGIC):
            invalid.append({"name": "bestand", "code": "geen_pdf", "reason": "het bestand is geen pdf"})
        if not _FILENAME.match(bestandsnaam):
            invalid.append({"name": "bestandsnaam", "code": "ongeldig", "reason": "max. 200 tekens, geen pad"})
        return invalid

    # --- the running trajectory ---

    async def verlenging_vragen(self, principal: Principal, aanvraag_id: str, cmd: VerlengingVragen,
                                idempotency_key: str | None,
                                if_match: int | None = None) -> tuple[Aanvraag, Verlengingsverzoek]:
        """Record an extension request (only while granted, 409 otherwise); emits
        ``ips.traject.verlenging_gevraagd.v1``. A retried POST with the same Idempotency-Key returns the same
        request without a second event."""
        await self._own(principal, aanvraag_id)
        verzoek = Verlengingsverzoek(id=_id_for("verlenging", aanvraag_id, idempotency_key), maanden=cmd.maanden,
                                     gevraagd_op=self.clock(), toelichting=cmd.toelichting)

        def ask(a: Aanvraag) -> None:
            a.verlenging_vragen(verzoek)

        aanvraag = await self._change(aanvraag_id, ask, idempotency_key, if_match)
        stored = next((v for v in aanvraag.verlengingsverzoeken if v.id == verzoek.id), None)
        if stored is None:  # the key was used for another request on this application
            raise IdempotencyConflict(aanvraag_id)
        log.info("traject.verlenging_gevraagd", aanvraag_id=aanvraag_id, user=principal.subject)
        return aanvraag, stored

    async def stopbericht_melden(self, principal: Principal, aanvraag_id: str, cmd: StopberichtMelden,
                                 idempotency_key: str | None,
                                 if_match: int | None = None) -> tuple[Aanvraag, Stopbericht]:
        """Stopbericht deel 1, once and only while granted (409 otherwise); emits ``ips.traject.stopbericht.v1``.
        An einddatum before the start date is invalid input (400)."""
        await self._own(principal, aanvraag_id)
        now = self.clock()

        def report(a: Aanvraag) -> None:
            a.stopbericht_melden(cmd.einddatum, now)

        aanvraag = await self._change(aanvraag_id, report, idempotency_key, if_match)
        if aanvraag.stopbericht is None:  # the key was used for another request on this application
            raise IdempotencyConflict(aanvraag_id)
        log.info("traject.stopbericht", aanvraag_id=aanvraag_id, user=principal.subject)
        return aanvraag, aanvraag.stopbericht

    async def eindverslag_indienen(self, principal: Principal, aanvraag_id: str, bestandsnaam: str | None,
                                   content_type: str, content: bytes, idempotency_key: str | None,
                                   if_match: int | None = None) -> DocumentInfo:
        """Store the beëindigingsverslag (a PDF, like uploads) and emit ``ips.traject.eindverslag_ingediend.v1``.

        Once, and only while granted (409 otherwise; checked before the content is written). The content is
        written first under an id fixed by the Idempotency-Key, then the application with the event.
        """
        naam = bestandsnaam or f"{domain.SOORT_EINDVERSLAG}.pdf"
        invalid = self._pdf_invalid(content_type, content, naam)
        if invalid:
            raise InvalidInput(invalid)
        doc, aanvraag = await self._own_document(principal, aanvraag_id)
        document_id = _id_for("eindverslag", aanvraag_id, idempotency_key)
        if idempotency_key and idempotency_key in (doc.get("idempotency_keys") or []):
            return self._eindverslag(aanvraag, document_id)
        if if_match is not None and if_match != aanvraag.revision:
            raise PreconditionFailed(aanvraag_id)
        if aanvraag.status != domain.TOEGEKEND:
            raise Conflict(f"Het beëindigingsverslag kan alleen bij een toegekende aanvraag "
                           f"(status {aanvraag.status}).")
        if aanvraag.eindverslag_document_id is not None:
            raise Conflict("Het beëindigingsverslag is al ingediend.")
        info = DocumentInfo(id=document_id, soort=domain.SOORT_EINDVERSLAG, bestandsnaam=naam, content_type=PDF,
                            grootte=len(content), sha256=hashlib.sha256(content).hexdigest(),
                            ontvangen_op=self.clock())
        await self.documenten.put(info, aanvraag_id, content, principal.subject)

        def submit(a: Aanvraag) -> None:
            a.eindverslag_indienen(info)

        stored = await self._change(aanvraag_id, submit, idempotency_key, if_match)
        log.info("traject.eindverslag_ingediend", aanvraag_id=aanvraag_id, document_id=document_id,
                 user=principal.subject)
        return self._eindverslag(stored, document_id)

    @staticmethod
    def _eindverslag(aanvraag: Aanvraag, document_id: str) -> DocumentInfo:
        found = next((d for d in aanvraag.documenten if d.id == document_id), None)
        if found is None or aanvraag.eindverslag_document_id != document_id:
            raise IdempotencyConflict(aanvraag.id)
        return found

    async def aanvullen(self, principal: Principal, aanvraag_id: str, cmd: AanvraagAanvullen,
                        idempotency_key: str | None, if_match: int | None = None) -> Aanvraag:
        """Supplement while a repair was asked (409 otherwise); emits ``ips.aanvraag.aangevuld.v1``. The
        aanvulling that completes the application gives it its place in the order of receipt (the volgnummer)."""
        huidig = await self._own(principal, aanvraag_id)
        now = self.clock()

        def supplement(a: Aanvraag) -> None:
            a.aanvullen(now, ondertekening=_ondertekening(cmd.ondertekening) if cmd.ondertekening else None,
                        modelgetrouwheid=_modelgetrouwheid(cmd.modelgetrouwheid),
                        doelgroep=_doelgroep(cmd.doelgroep) if cmd.doelgroep else None)

        nummer: int | None = None
        with contextlib.suppress(DomainError, InvalidValue):  # the change itself reports these
            supplement(huidig)  # on the copy just read: does this aanvulling complete it?
            if huidig.mist_volgnummer(self.vereiste_bijlagen) and if_match in (None, huidig.revision):
                nummer = await self.aanvragen.volgend_volgnummer()

        def supplement_en_nummer(a: Aanvraag) -> None:
            supplement(a)
            if nummer is not None and a.mist_volgnummer(self.vereiste_bijlagen):
                a.volgnummer_toekennen(nummer)

        aanvraag = await self._change(aanvraag_id, supplement_en_nummer, idempotency_key, if_match)
        log.info("aanvraag.aangevuld", aanvraag_id=aanvraag_id, user=principal.subject)
        return aanvraag

    async def intrekken(self, principal: Principal, aanvraag_id: str, idempotency_key: str | None,
                        if_match: int | None = None) -> Aanvraag:
        """Withdraw until a decision is registered (409 after); emits ``ips.aanvraag.ingetrokken.v1`` once."""
        await self._own(principal, aanvraag_id)
        now = self.clock()

        def withdraw(a: Aanvraag) -> None:
            a.intrekken(now)

        aanvraag = await self._change(aanvraag_id, withdraw, idempotency_key, if_match)
        log.info("aanvraag.ingetrokken", aanvraag_id=aanvraag_id, user=principal.subject)
        return aanvraag

    async def _own(self, principal: Principal, aanvraag_id: str) -> Aanvraag:
        return (await self._own_document(principal, aanvraag_id))[1]

    async def _own_document(self, principal: Principal, aanvraag_id: str) -> tuple[Document, Aanvraag]:
        doc = await self.aanvragen.get_document(aanvraag_id)
        if doc is None:
            raise NotFound(aanvraag_id)
        aanvraag = from_doc(doc)
        if principal.org_type != "ggz" or principal.org != aanvraag.ggz_kvk_nummer:
            raise Forbidden("Alleen de indienende ggz-instelling kan deze aanvraag wijzigen.")
        return doc, aanvraag

    async def _change(self, aanvraag_id: str, change: Callable[[Aanvraag], None],
                      idempotency_key: str | None = None, if_match: int | None = None) -> Aanvraag:
        """Load, change and write back with the events through servicekit's unit of work, retried on a
        concurrent write.

        A request whose Idempotency-Key was applied before returns the current state without a change.
        With ``if_match`` (the ETag the portal read) a changed application is PreconditionFailed, not retried.
        """
        def apply(aanvraag: Aanvraag) -> None:
            try:
                change(aanvraag)
            except DomainError as exc:
                raise Conflict(str(exc)) from None
            except InvalidValue as exc:
                raise InvalidInput([{"name": exc.name, "code": exc.code, "reason": exc.reason}]) from None

        uow = UnitOfWork(self.aanvragen.store, AANVRAAG, name="aanvragen", applied_field="idempotency_keys",
                         memory=IDEMPOTENCY_MEMORY, retries=MAX_WRITE_RETRIES)
        try:
            done = await uow.run(aanvraag_id, apply, message_id=idempotency_key, expected_revision=if_match)
        except Missing:
            raise NotFound(aanvraag_id) from None
        except RevisionMismatch:
            raise PreconditionFailed(aanvraag_id) from None
        done.aggregate.revision = done.doc["revision"]
        if not done.repeated:
            self.wake(aanvraag_id, self.aanvragen.collection, done.doc)
        return done.aggregate


def _id_for(kind: str, aanvraag_id: str, idempotency_key: str | None) -> str:
    """A new id, fixed by the Idempotency-Key when there is one (so a retried request finds what it made)."""
    if idempotency_key:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ipsflow:{kind}:{aanvraag_id}:{idempotency_key}"))
    return str(uuid.uuid4())


def doorgezonden_door(principal: Principal, aanvraag: Aanvraag) -> bool:
    """The gemeente that forwarded the application (Awb 2:3) keeps a record of it: that and to whom, no more."""
    return principal.org_type == "gemeente" and principal.org == aanvraag.doorgezonden_van


def may_read(principal: Principal, aanvraag: Aanvraag) -> bool:
    """ggz: its own applications; gemeente: those currently addressed to it; beheer: all; UWV: none."""
    if principal.org_type == "ggz":
        return principal.org == aanvraag.ggz_kvk_nummer
    if principal.org_type == "gemeente":
        return principal.org == aanvraag.gemeente_code
    return principal.org_type == "beheer"


def _ondertekening(o: OndertekeningIn) -> domain.Ondertekening:
    return domain.Ondertekening(kandidaat=o.kandidaat, ggz_instelling=o.ggz_instelling)


def _doelgroep(d: DoelgroepIn) -> domain.Doelgroep:
    return domain.Doelgroep(uitkering=d.uitkering, wil_betaald_werk=d.wil_betaald_werk,
                            andere_reintegratie=d.andere_reintegratie)


def _modelgetrouwheid(m: ModelgetrouwheidIn | None) -> domain.Modelgetrouwheid | None:
    return None if m is None else domain.Modelgetrouwheid(certificaatnummer=m.certificaatnummer,
                                                          geldig_tot=m.geldig_tot)
