"""Message handlers of notifications.

* ``ips.aanvraag.ingediend.v1`` (event): recorded in ``dossiers`` (one document per case). The message id
  goes into the same single-document update as the effect, so a redelivery changes nothing.
* ``ips.bericht.versturen.v1`` (command): records ONE message per beschikking in ``berichten`` (its ``_id``
  is derived from the beschikking id) with the e-mail text and the letter as PDF, and replies at once through
  ``apply_command`` on that document. Sending is the sender loop's job (sender.py): the process never waits
  for SMTP. A redelivered command, or a second command for the same beschikking, finds the document and
  only answers again; nothing new is sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

from bson import Binary
from pymongo.asynchronous.database import AsyncDatabase

from notifications.domain import (
    BEZIG,
    GEBLOKKEERD,
    GEEN_ADRES,
    TE_VERSTUREN,
    VERZONDEN,
    Brief,
    Contacten,
    Ontvangers,
    bepaal_ontvangers,
    bericht_id,
)
from notifications.letter import Lettertype, render_pdf
from notifications.messages import BerichtVersturen
from notifications.repository import BerichtenRepository
from notifications.sjablonen import Sjablonen
from servicekit.commands import Outcome, apply_command, command_params
from servicekit.consumer import PoisonMessage
from servicekit.envelope import CloudEvent
from servicekit.kalender import amsterdam_dag
from servicekit.logging import get_logger
from servicekit.personal_data import holds_bsn_like_number
from servicekit.relay import Wake, no_relay
from servicekit.store import ConcurrencyError, Document, DuplicateKeyError
from servicekit.unit_of_work import DOCUMENT, UnitOfWork

log = get_logger(__name__)
SERVICE = "notifications"


class Conflict(Exception):
    """The message is not in a state that allows this (e.g. already sent)."""


class NotificationHandlers:
    def __init__(self, db: AsyncDatabase[Document], repo: BerichtenRepository | None = None,
                 laad_contacten: Callable[[], Contacten] | None = None, sjablonen: Sjablonen | None = None,
                 wake_relay: Wake = no_relay,
                 wake_sender: Callable[[str | None], None] = lambda _bericht_id: None,
                 lettertype: Lettertype | None = None) -> None:
        self.dossiers = db["dossiers"]
        self.repo = repo or BerichtenRepository(db)
        self.laad_contacten = laad_contacten or (lambda: Contacten({}, {}))
        self.contacten = self.laad_contacten()
        self.sjablonen = sjablonen or Sjablonen()
        self.lettertype = lettertype or Lettertype()
        self.wake_relay = wake_relay
        self.wake_sender = wake_sender

    async def aanvraag_ingediend(self, event: CloudEvent) -> None:
        """Record the application once per message id. Idempotent: the update's filter excludes applied ids.

        Not one upsert: FerretDB v1 scans the whole collection for an upsert filtered on more than the _id (the
        FerretDB front checks only plain updates by _id, deploy/ferretdb/idfilter.go), 1.9 s under the write lock
        with 22,000 dossiers (issue 14's history run). The usual case, a new case, is one insert; a later message
        of the case finds the dossier and is one update the front checks by _id."""
        if not event.subject:
            raise PoisonMessage("event without subject (case id)")
        fields = {"gemeente_code": event.data.get("gemeenteCode"), "traject_type": event.data.get("trajectType"),
                  "laatste_bericht": event.type}
        for _ in range(3):
            try:
                await self.dossiers.insert_one({"_id": event.subject, "applied": [event.id], "berichten": 1,
                                                **fields})
                break
            except DuplicateKeyError:
                pass  # the dossier exists: add this message to it, unless it holds it already
            result = await self.dossiers.update_one(
                {"_id": event.subject, "applied": {"$ne": event.id}},
                {"$push": {"applied": event.id}, "$inc": {"berichten": 1}, "$set": fields})
            if result.matched_count == 1:
                break
            if await self.dossiers.find_one({"_id": event.subject}, {"_id": 1}) is not None:
                log.info("message.duplicate")  # the dossier holds this message id: a redelivery
                return
            # deleted in between (nothing deletes dossiers today): try the insert again
        else:
            raise RuntimeError(f"dossier {event.subject}: not recorded")
        log.info("dossier.recorded")

    # ------------------------------------------------------------------------------------ bericht versturen

    async def bericht_versturen(self, command: CloudEvent) -> None:
        """ips.bericht.versturen.v1 -> ``bericht``: berichtId, ontvangers (organisation ids), status."""
        p = command_params(BerichtVersturen, command)
        bid = bericht_id(p.beschikking.beschikking_id)

        def apply(doc: Document) -> Outcome:
            return {"berichtId": doc["_id"], "ontvangers": doc["ontvangers"], "status": doc["status"]}

        doc = await apply_command(self.repo.berichten, bid, command, SERVICE, apply,
                                  create=lambda: self._nieuw_bericht(p, bid, command))
        self.wake_relay(bid, self.repo.collection, doc)  # as written: the relay need not read it
        if doc.get("status") == TE_VERSTUREN:
            self.wake_sender(bid)
        log.info("bericht.vastgelegd", bericht_id=bid, aanvraag_id=p.aanvraag_id, status=doc.get("status"))

    def _nieuw_bericht(self, p: BerichtVersturen, bid: str, command: CloudEvent) -> Document:
        beschikking = p.beschikking.model_dump(by_alias=True, mode="json", exclude_none=True)
        beschikking.setdefault("datum", amsterdam_dag(command.time).isoformat())
        now = datetime.now(UTC)
        doc: Document = {
            "_id": bid, "aanvraag_id": p.aanvraag_id, "beschikking_id": p.beschikking.beschikking_id,
            "kenmerk": p.beschikking.kenmerk, "soort": p.beschikking.soort, "gemeente_code": p.gemeente_code,
            "ggz_kvk_nummer": p.ggz_kvk_nummer, "beschikking": beschikking, "command_id": command.id,
            # every gemeente copied on it (and so allowed to read it): the letter's own and e.g. the competent one
            "cc_gemeenten": list(dict.fromkeys([p.gemeente_code, *p.cc_gemeente_codes])),
            "pogingen": [], "teller": 0, "aangemaakt_op": now, "verzonden_op": None, "smtp_antwoord": None,
            "claim": None, "lease_tot": None,
        }
        doc.update(self._inhoud(doc, self.contacten, now))
        return doc

    def _inhoud(self, doc: Document, contacten: Contacten, now: datetime) -> Document:
        """Recipients, e-mail text and letter for the message; the status follows from them."""
        brief = Brief.uit_beschikking(doc["beschikking"], doc["aanvraag_id"], doc["gemeente_code"], contacten,
                                      doc.get("ggz_kvk_nummer"))
        cc_gemeenten = doc.get("cc_gemeenten") or [doc["gemeente_code"]]
        ontvangers = bepaal_ontvangers(contacten, doc.get("ggz_kvk_nummer"), doc["gemeente_code"], cc_gemeenten[1:])
        tekst = self.sjablonen.mail_tekst(brief)
        # The beschikking's text, rendered once from grants' data and kept with its PDF: this document is the
        # one copy of the letter (README, "Letters").
        brief_tekst = self.sjablonen.beschikking_tekst(brief)
        pdf = render_pdf(brief, self.sjablonen, self.lettertype, brief_tekst)
        eigen = (brief.kenmerk, brief.aanvraag_id, brief.beschikking_id, str(doc["_id"]),
                 brief.bestandsnaam.removesuffix(".pdf"))
        if holds_bsn_like_number(tekst + "\n" + brief_tekst, eigen):
            status = GEBLOKKEERD
            log.warning("bericht.geblokkeerd", bericht_id=doc["_id"], reden="mogelijk BSN in de tekst")
        elif not ontvangers.compleet:
            status = GEEN_ADRES
            log.warning("bericht.geen_adres", bericht_id=doc["_id"], ontbrekend=list(ontvangers.ontbrekend))
        else:
            status = TE_VERSTUREN
        return {
            "aan": [{"naam": c.naam, "email": c.email} for c in ontvangers.aan],
            "cc": [{"naam": c.naam, "email": c.email} for c in ontvangers.cc],
            "ontvangers": _ontvangers(ontvangers, doc.get("ggz_kvk_nummer"), cc_gemeenten),
            "ontbrekend": list(ontvangers.ontbrekend), "onderwerp": f"{brief.onderwerp} (kenmerk {brief.kenmerk})",
            "tekst": tekst, "brief_tekst": brief_tekst, "pdf": Binary(pdf), "bijlage": brief.bestandsnaam,
            "bijlage_bytes": len(pdf),
            "bijlage_sha256": hashlib.sha256(pdf).hexdigest(), "status": status,
            "volgende_poging": now if status == TE_VERSTUREN else None,
        }

    async def opnieuw(self, bid: str) -> Document:
        """Beheer: try a failed, parked or waiting message now, with a fresh round of attempts. A message
        without an address is first addressed again from the (re-read) contact configuration.
        Raises LookupError (unknown) or Conflict (sent, being sent, blocked, still no address)."""

        def again(doc: Document) -> None:
            status = doc.get("status")
            if status in (VERZONDEN, BEZIG):
                raise Conflict(f"Het bericht heeft de status {status}.")
            if status == GEBLOKKEERD:
                raise Conflict("Dit bericht wordt nooit verzonden: de tekst lijkt een BSN te bevatten.")
            now = datetime.now(UTC)
            if status == GEEN_ADRES:
                self.contacten = self.laad_contacten()
                inhoud = self._inhoud(doc, self.contacten, now)
                if inhoud["status"] != TE_VERSTUREN:
                    raise Conflict("Er ontbreekt nog een contactadres: " + ", ".join(inhoud["ontbrekend"]))
                doc.update(inhoud)
            doc.update(status=TE_VERSTUREN, volgende_poging=now, teller=0)

        try:
            await UnitOfWork(self.repo.berichten, DOCUMENT, retries=10).run(bid, again)
        except ConcurrencyError:
            raise Conflict("Het bericht verandert te vaak; probeer het opnieuw.") from None
        self.wake_sender(bid)
        log.info("bericht.opnieuw", bericht_id=bid)
        found = await self.repo.get(bid, licht=True)
        assert found is not None
        return found


def _ontvangers(o: Ontvangers, kvk: str | None, gemeenten: list[str]) -> list[dict[str, str]]:
    """Who the message goes to, as organisation ids only (the reply is an event: no names, no addresses)."""
    found = []
    if o.aan and kvk:
        found.append({"rol": "aan", "organisatie": "ggz", "id": kvk})
    if o.cc:
        found.extend({"rol": "cc", "organisatie": "gemeente", "id": code} for code in gemeenten)
    return found
