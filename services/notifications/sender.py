"""The sender loop: takes due messages from ``berichten`` and delivers them over SMTP.

Exactly-once as far as SMTP allows:

* A sender first **claims** a message: a revision-checked update from ``te_versturen`` (due) to ``bezig``
  with a random claim token and a lease. Two senders (tasks or processes) cannot both win that update, so a
  message is never handed to SMTP twice while a claim holds.
* After SMTP answered, the outcome is written only if the claim is still ours (``claim`` = our token).
* SMTP has no idempotency. A crash after the server accepted the message and before ``verzonden`` was
  written leaves the claim to run out; after ``lease_tot`` another sender tries again, which may deliver the
  message a second time. The ``Message-ID`` header is derived from the beschikking, so the receiving side
  can recognise and drop the repeat. The lease is kept well above the SMTP timeout so a slow, live send is
  never taken over.

A failed attempt goes into ``pogingen`` (time, error, SMTP code) and the next attempt is scheduled from the
``Herhaalschema``; a permanent refusal (5xx) or running out of attempts makes the message ``mislukt``.

A server that cannot be reached (no connection, a timeout, 421) backs off as a whole: one state per sender,
not per message. While it backs off the sender neither reads nor writes; when the wait is over, one message
(the one due longest) probes the server, and only when that goes through do the others follow. Per message
every attempt costs two writes (claim and outcome), so while SMTP is down the writes are two per wait of the
server, however many messages wait (they were two per message per wait). Each process keeps its own state.

Which messages are due the sender mostly knows without reading: the handler that stored a message wakes the sender
with its id, and a failed attempt's next time is the sender's own. A filter on ``status`` makes FerretDB v1 decode
every stored message, PDF and all (about 1.5 ms each): scanning on every new message and every poll cost more
than a letter, and grew with every message ever sent. The scan (:meth:`BerichtenRepository.due`) now runs at
start and every ``scan_seconds``, for what this process cannot know: another process's messages whose lease ran
out, messages it stored before a restart. A claim still reads the message by ``_id`` and checks it is due, so an id
remembered wrongly costs one read. With a year of letters a scan takes seconds (12.7 s for 22,000, measured in
issue 14's history run), so the next one waits at least ``SCAN_SPACING`` times as long as the last one took.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta

from notifications.domain import Herhaalschema, is_permanente_fout, message_id_header
from notifications.mailer import Mail, SmtpConfig, SmtpFout, verstuur
from notifications.repository import BerichtenRepository
from servicekit.logging import get_logger
from servicekit.store import Document

log = get_logger(__name__)
SERVICE_NIET_BESCHIKBAAR = 421  # the server's own "try later", for every message alike
#: The scan for due messages waits at least this many times its own last duration (about 3 % of the time).
SCAN_SPACING = 30.0


class Sender:
    def __init__(self, repo: BerichtenRepository, smtp: SmtpConfig, schema: Herhaalschema, *,
                 lease_seconds: float, poll_seconds: float, parallel: int = 4, message_id_domain: str,
                 server_max_wacht_seconds: float = 60.0, scan_seconds: float = 30.0) -> None:
        self.repo = repo
        self.smtp = smtp
        self.schema = schema
        self.lease = timedelta(seconds=lease_seconds)
        self.poll_seconds = poll_seconds
        self.parallel = asyncio.Semaphore(parallel)
        self.message_id_domain = message_id_domain
        self._wake = asyncio.Event()
        #: The server's backoff: consecutive failures to reach it, and no attempt before ``_server_tot``.
        self.server_fouten = 0
        self._server_tot: datetime | None = None
        self.server_max_wacht = timedelta(seconds=server_max_wacht_seconds)
        self.scan = timedelta(seconds=scan_seconds)
        #: Messages this sender knows to be due from a moment on (see the module docstring), and the next scan.
        self._bekend: dict[str, datetime] = {}
        self._scan_op: datetime | None = None  # None: scan in the next round

    def _server_wacht(self, now: datetime) -> bool:
        return self._server_tot is not None and now < self._server_tot

    def _server_bereikt(self) -> None:
        if self.server_fouten:
            log.info("smtp.bereikbaar", na_fouten=self.server_fouten)
        self.server_fouten, self._server_tot = 0, None

    def _server_onbereikbaar(self, now: datetime) -> None:
        if self._server_wacht(now):
            return  # an attempt that was under way when another one found the server away: one failure
        self.server_fouten += 1
        wachttijden = self.schema.wachttijden or [5.0]
        wacht = min(timedelta(seconds=wachttijden[min(self.server_fouten, len(wachttijden)) - 1]),
                    self.server_max_wacht)
        self._server_tot = max(self._server_tot or now, now + wacht)
        log.warning("smtp.onbereikbaar", fouten=self.server_fouten, volgende_poging=self._server_tot.isoformat())

    def wake(self, bericht_id: str | None = None) -> None:
        """A message is due now (``bericht_id``), or something may be (None: scan the collection)."""
        if bericht_id is None:
            self._scan_op = None
        else:
            self._bekend[bericht_id] = datetime.now(UTC)
        self._wake.set()

    def _wacht_seconds(self) -> float:
        """Until the next round: the first remembered message's time or the next scan (while the server backs
        off: the end of its wait), at most poll_seconds."""
        now = datetime.now(UTC)
        if self._server_wacht(now):
            assert self._server_tot is not None
            volgende = self._server_tot
        else:
            volgende = min([*self._bekend.values(), self._scan_op or now])
        return max(0.05, min(self.poll_seconds, (volgende - now).total_seconds()))

    async def run(self) -> None:
        backoff = 0.5
        while True:
            self._wake.clear()
            try:
                await self.run_once()
                wacht = self._wacht_seconds()  # inside the try: nothing may end the loop
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: try again, never die
                log.warning("sender.unavailable", error=f"{type(exc).__name__}: {exc}", retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wacht)

    async def run_once(self) -> int:
        """One round: try every due message once; returns how many were sent. While the server backs off,
        nothing; after a failure to reach it, one message first, the others only when it went through."""
        now = datetime.now(UTC)
        if self._server_wacht(now):
            return 0
        due = await self._due(now)
        sent = 0
        if due and self.server_fouten:
            sent = int(await self._attempt(due[0]))
            if self.server_fouten:
                return sent
            due = due[1:]
        results = await asyncio.gather(*(self._attempt(d) for d in due))
        return sent + sum(results)

    async def _due(self, now: datetime, limit: int = 50) -> list[str]:
        """The ids to try now, the one due longest first: remembered ones, and at scan time the collection's."""
        if self._scan_op is None or now >= self._scan_op:
            started = datetime.now(UTC)
            found = await self.repo.due(now, limit)
            self._scan_op = now + max(self.scan, SCAN_SPACING * (datetime.now(UTC) - started))
            for doc in found:
                moment = doc.get("volgende_poging") or now  # a lease that ran out: due now
                self._bekend[doc["_id"]] = min(self._bekend.get(doc["_id"], moment), moment)
        due = sorted((moment, bericht_id) for bericht_id, moment in self._bekend.items() if moment <= now)
        return [bericht_id for _, bericht_id in due[:limit]]

    async def _attempt(self, bericht_id: str) -> bool:
        async with self.parallel:
            token = uuid.uuid4().hex
            now = datetime.now(UTC)
            if self._server_wacht(now):
                return False  # another attempt found the server unreachable meanwhile: no claim, no write
            doc = await self.repo.claim(bericht_id, token, now, now + self.lease)
            if doc is None:
                self._bekend.pop(bericht_id, None)
                return False  # someone else has it, or it is no longer due
            try:
                antwoord = await verstuur(self.smtp, self._mail(doc, await self.repo.pdf(doc)))
            except SmtpFout as exc:
                # no reply at all (refused, timed out, cut off) or 421: the server, not this message
                if exc.code is None or exc.code == SERVICE_NIET_BESCHIKBAAR:
                    self._server_onbereikbaar(datetime.now(UTC))
                else:
                    self._server_bereikt()
                await self._failed(doc, token, str(exc), exc.code)
                return False
            except Exception as exc:  # a bug or bad data must not leave the claim hanging until the lease ends
                await self._failed(doc, token, f"{type(exc).__name__}", None)
                raise
            self._server_bereikt()
            self._bekend.pop(bericht_id, None)
            if not await self.repo.mark_sent(bericht_id, token, datetime.now(UTC), antwoord):
                log.warning("bericht.claim_verloren", bericht_id=bericht_id)
                return False
            log.info("bericht.verzonden", bericht_id=bericht_id, aanvraag_id=doc.get("aanvraag_id"),
                     poging=len(doc.get("pogingen") or []) + 1)
            return True

    async def _failed(self, doc: Document, token: str, fout: str, code: int | None) -> None:
        now = datetime.now(UTC)
        volgende = None if is_permanente_fout(code) else self.schema.volgende(int(doc.get("teller") or 0) + 1, now)
        await self.repo.mark_failed(doc["_id"], token, now, fout, code, volgende)
        if volgende is None:
            self._bekend.pop(doc["_id"], None)
        else:
            self._bekend[doc["_id"]] = volgende
        log.warning("bericht.poging_mislukt", bericht_id=doc["_id"], smtp_code=code,
                    volgende_poging=volgende.isoformat() if volgende else None)

    def _mail(self, doc: Document, pdf: bytes) -> Mail:
        return Mail(aan=[(c["naam"], c["email"]) for c in doc["aan"]],
                    cc=[(c["naam"], c["email"]) for c in doc.get("cc") or []],
                    onderwerp=doc["onderwerp"], tekst=doc["tekst"],
                    message_id=message_id_header(doc["beschikking_id"], self.message_id_domain),
                    bijlage=pdf, bestandsnaam=doc["bijlage"])
