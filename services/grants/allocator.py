"""The allocator: decides reservation requests strictly in the order of receipt of complete applications
(Awb 4:25), without a time window.

Intake numbers every application at the moment it becomes complete (the volgnummer: a complete submission,
or the aanvulling or upload that completes it) and announces the number with
``ips.aanvraag.volgnummer_toegekend.v1`` from its outbox (exactly once). The engine carries the number into
``ips.budget.reserveren.v1``. Grants keeps one small document per number in ``volgorde`` (repository.py) and a
head ``kop``: ``tot`` (every number up to it is done) and ``bekend`` (the highest number it heard of).

The request of number n is decided as soon as every number below it is done:

* decided (the allocator closes a number after deciding its request);
* given back before its request came (intake's ``ips.aanvraag.ingetrokken.v1`` carries the number);
* a gap: a number below ``bekend`` that was never announced nor asked for (intake took it and crashed before it
  wrote the application) is skipped after ``gat_seconds``, with a warning in the log;
* stuck: an announced number whose request does not come within ``stilstand_seconds`` (a case in an incident,
  or cancelled) is passed, with a warning; if its request still comes, it is decided at once.

Nothing waits for a clock in the normal case: the consumer that stores a request wakes the allocator, which
decides it the moment the number before it is done. A request for a number the head has passed, and one without
a number (an application completed before numbering existed), is decided at once by the consumer.

One allocator walks at a time across grants processes (the ``allocator`` lease, taken only while something can
be decided and dropped after, so an idle allocator writes nothing). The money never depends on the lease: every
step is a guarded update keyed by the aanvraag id, and the head moves by compare-and-set, so even two allocators
at once (an expired lease) decide each number once, and a number only after every number below it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from grants.repository import AANGEKONDIGD, AFWEZIG, GESLOTEN, VRIJGEGEVEN, GrantsRepository
from grants.volgorde import WACHT, Reserveringen
from servicekit.logging import get_logger

log = get_logger(__name__)
LEASE = "allocator"

# What to do with the number after the head (see ``stap``).
WACHTEN, DOOR, BESLIS, SLUIT, SLUIT_GAT, SLUIT_STIL = "wachten", "door", "beslis", "sluit", "sluit_gat", "sluit_stil"
MAX_STAPPEN = 100_000  # per walk: a bound, not a limit anyone reaches (a walk ends when nothing is due)


def stap(plaats: dict[str, Any] | None, verzoek: str | None, nummer: int, bekend: int, gat_gezien: float | None,
         nu_mono: float, nu: datetime, gat: float, stilstand: timedelta) -> str:
    """What the allocator does with ``nummer``, the first number after the head (pure: unit-tested).

    ``verzoek`` is the status of the place's reservation request (None: not asked yet); ``gat_gezien`` is when
    this process first saw the number missing (monotonic seconds), or None."""
    if plaats is None:
        if nummer > bekend:
            return WACHTEN  # nothing announced or asked for beyond the head: idle
        if gat_gezien is None or nu_mono - gat_gezien < gat:
            return WACHTEN  # its announcement may still be on its way
        return SLUIT_GAT
    status = plaats.get("status")
    if status == GESLOTEN:
        return DOOR
    if verzoek == WACHT:
        return BESLIS
    if verzoek is not None:
        return DOOR  # decided already (at once, on grounds that do not depend on the money)
    if status == VRIJGEGEVEN:
        return SLUIT
    if status == AANGEKONDIGD and nu - _utc(plaats["op"]) >= stilstand:
        return SLUIT_STIL
    return WACHTEN


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Allocator:
    def __init__(self, repo: GrantsRepository, reserveringen: Reserveringen, interval: float = 0.5,
                 lease_seconds: float = 10.0, gat_seconds: float = 30.0, stilstand_seconds: float = 300.0) -> None:
        self.repo = repo
        self.reserveringen = reserveringen
        self.interval = interval  # how often a round looks without being woken (gaps, stuck numbers, the other process)
        self.lease = timedelta(seconds=lease_seconds)
        self.gat = gat_seconds
        self.stilstand = timedelta(seconds=stilstand_seconds)
        self.holder = f"allocator-{uuid.uuid4().hex[:12]}"
        self.decided = 0
        self._held = False  # whether this process holds the lease (shutting down drops it only then)
        self._wakker = asyncio.Event()
        self._gat_gezien: dict[int, float] = {}

    def wake(self) -> None:
        """A request was stored or a number given back: look now instead of at the next interval."""
        self._wakker.set()

    async def run(self) -> None:
        try:
            while True:
                self._wakker.clear()
                try:
                    await self.round()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("allocator.round_failed", error=f"{type(exc).__name__}: {exc}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakker.wait(), self.interval)
        finally:
            with contextlib.suppress(Exception):  # shutting down: otherwise the lease simply expires
                if self._held:
                    await asyncio.shield(self.repo.drop_lease(LEASE, self.holder, datetime.now(UTC)))

    async def round(self) -> int:
        """Decide what is due, in order. Reads the head (and the number after it); takes the lease only when
        that number can be settled now. Returns how many requests it decided."""
        decided = 0
        for _ in range(3):  # after dropping the lease: once more, for a request stored while we held it
            kop = await self.repo.kop()
            tot = int(kop.get("tot", 0))
            if self._actie(tot + 1, int(kop.get("bekend", 0)), *await self._lees(tot + 1)) == WACHTEN:
                return decided
            now = datetime.now(UTC)
            if not await self.repo.take_lease(LEASE, self.holder, now, now + self.lease):
                return decided  # the other process walks; it looks again before it lets go
            self._held = True
            try:
                stappen, besloten = await self._walk(tot, now)
            finally:
                self._held = False
                await self.repo.drop_lease(LEASE, self.holder, datetime.now(UTC))
            decided += besloten
            self.decided += besloten
            if stappen == 0:
                return decided
        return decided

    async def _lees(self, nummer: int) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The number's place and, if it names one, its reservation request."""
        plaats = await self.repo.plaats(nummer)
        if plaats is None or plaats.get("status") == GESLOTEN or not plaats.get("aanvraag_id"):
            return plaats, None
        return plaats, await self.repo.verzoeken.get(plaats["aanvraag_id"])

    def _actie(self, nummer: int, bekend: int, plaats: dict[str, Any] | None,
               verzoek: dict[str, Any] | None) -> str:
        if plaats is None and nummer <= bekend:
            self._gat_gezien.setdefault(nummer, time.monotonic())
        return stap(plaats, None if verzoek is None else str(verzoek.get("status")), nummer, bekend,
                    self._gat_gezien.get(nummer), time.monotonic(), datetime.now(UTC), self.gat, self.stilstand)

    async def _walk(self, tot: int, renewed: datetime) -> tuple[int, int]:
        """Settle numbers after the head while they can be settled; returns (numbers passed, requests decided)."""
        kop = await self.repo.kop()
        if int(kop.get("tot", 0)) != tot:
            return 0, 0
        bekend = int(kop.get("bekend", 0))
        passed = decided = 0
        for _ in range(MAX_STAPPEN):
            nummer = tot + 1
            if nummer > bekend:
                bekend = int((await self.repo.kop()).get("bekend", 0))
            plaats, verzoek = await self._lees(nummer)
            actie = self._actie(nummer, bekend, plaats, verzoek)
            if actie == WACHTEN:
                break
            if actie == BESLIS and plaats is not None:
                besloten = await self._beslis(str(plaats["aanvraag_id"]), verzoek)
                if besloten is None:
                    break  # could not decide now (concurrent changes): the next round tries again
                decided += besloten
            elif actie in (SLUIT, SLUIT_GAT, SLUIT_STIL):
                if not await self._sluit(nummer, actie, plaats):
                    continue  # the number changed meanwhile (announced, asked for): look again
                if plaats is not None and await self._wacht(str(plaats["aanvraag_id"])):
                    # its request came as we closed the place: the consumer read the place before we closed
                    # it, so it left the request to us; it is decided now, still in turn
                    decided += await self._beslis(str(plaats["aanvraag_id"])) or 0
            moment = datetime.now(UTC)
            if moment - renewed > self.lease / 3:
                if not await self.repo.take_lease(LEASE, self.holder, moment, moment + self.lease):
                    break  # someone else took over (we were too slow): they continue in order
                renewed = moment
            moved = await self.repo.schuif_op(tot, nummer, kop)
            if moved is None:
                break  # another allocator moved the head (an expired lease): it continues
            kop = moved
            tot = nummer
            passed += 1
            self._gat_gezien.pop(nummer, None)
        return passed, decided

    async def _sluit(self, nummer: int, actie: str, plaats: dict[str, Any] | None) -> bool:
        van, reden = {SLUIT: ((VRIJGEGEVEN,), "vrijgegeven"), SLUIT_GAT: ((AFWEZIG,), "gat"),
                      SLUIT_STIL: ((AANGEKONDIGD,), "stilstand")}[actie]
        if await self.repo.plaats_zetten(nummer, van, GESLOTEN, {"reden": reden}, plaats) != GESLOTEN:
            return False
        if actie == SLUIT_GAT:
            log.warning("volgorde.gat_overgeslagen", volgnummer=nummer, seconden=self.gat)
        elif actie == SLUIT_STIL:
            log.warning("volgorde.stilstand_overgeslagen", volgnummer=nummer,
                        seconden=self.stilstand.total_seconds())
        return True

    async def _beslis(self, aanvraag_id: str, verzoek: dict[str, Any] | None = None) -> int | None:
        """Decide the number's request (it stays ``aangevraagd``: the head passing it is what closes it).
        Returns how many it decided (0: decided before), or None when it still waits after a few attempts
        (each lost to a concurrent change). A new command for the same aanvraag that replaces the request while
        we decide makes our write miss; the next attempt decides the new one. One that replaces it after it was
        decided is decided at once by the consumer (its turn came already)."""
        for _ in range(10):
            if await self.reserveringen.decide(aanvraag_id, verzoek):
                return 1
            verzoek = None
            if not await self._wacht(aanvraag_id):
                return 0
        return None

    async def _wacht(self, aanvraag_id: str) -> bool:
        request = await self.repo.verzoeken.get(aanvraag_id)
        return request is not None and request.get("status") == WACHT
