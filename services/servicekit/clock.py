"""The time a service works with: real time, or in test and training environments one rehearsal clock (oefenklok).

A rehearsal ("received on 3 March, overdue on 29 April") needs every service on the same clock: intake stamps the
receipt date, grants derives the decision date and dates its beschikkingen from the engine's commands, payments
dates its orders and batches, notifications dates its letters and the engine fires its timers. So the clock is
one value, an **offset from real time**: setting it to T at real time R stores ``T - R``, and from then on the
clock runs on like a normal clock, T + (now - R).

How the value reaches every service without anyone reading another's database: the engine's
``PUT /api/v1/beheer/klok`` (``ipsflow klok set``) stores the new offset in the engine's own database and, in the
same single-document write, puts the admin command ``ips.klok.zetten.v1`` in that document's outbox. The relay
publishes it on ``ips.commands``; every service whose clock is adjustable binds its queue to that routing key (a
broadcast: each queue gets its own copy), stores the offset in its own database (a restart keeps it) and applies
it. It is a command, not a domain event: services consume only commands, and this one is an instruction from
functional administration ("use this time from now on"), exactly like the engine's other commands.

Ordering: a message can be redelivered or come back from a retry tier after a newer one, so each setting carries
the real time it was made (``gezetOp``) and the later setting wins. Other processes of the same service, which do
not get the message from the shared queue, read the stored offset every ``clock_refresh_seconds``.

Only business dates follow the clock. Technical time stays real: retry back-off, the relay's polls, the grants
allocator's lease and its volgnummer bounds, the mail sender's schedule and leases, token expiry. (The engine's timer
leases use its clock, which every engine worker shares.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from servicekit.broker import COMMANDS
from servicekit.consumer import PoisonMessage
from servicekit.envelope import CloudEvent, new_event
from servicekit.logging import configure_logging, get_logger
from servicekit.settings import ServiceSettings
from servicekit.store import Document, DocumentStore
from servicekit.unit_of_work import DOCUMENT, Unchanged, UnitOfWork

log = get_logger(__name__)

#: The admin command that moves every adjustable clock (bpmn/README.md, "Beheeropdrachten").
CLOCK_COMMAND = "ips.klok.zetten.v1"
COLLECTION = "klok"
DOC_ID = "klok"
#: Exit status of a service that refuses its configuration (sysexits.h EX_CONFIG).
EX_CONFIG = 78


def system_now() -> datetime:
    return datetime.now(UTC)


class Clock(Protocol):
    """What handlers and APIs call for "now": timezone-aware UTC."""

    @property
    def adjustable(self) -> bool: ...

    @property
    def state(self) -> ClockState: ...

    def __call__(self) -> datetime: ...


@dataclass(frozen=True)
class ClockState:
    """A clock setting: the offset from real time, and the real time the setting was made (the later one wins)."""

    offset: timedelta = timedelta(0)
    set_at: datetime | None = None

    def to_data(self, now: datetime) -> dict[str, Any]:
        """The wire form (the command's data); ``now`` is the clock's time at the moment of setting."""
        return {"nu": now.isoformat(), "verschuivingSeconden": self.offset.total_seconds(),
                "gezetOp": self.set_at.isoformat() if self.set_at else None}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> ClockState:
        """Raises ValueError (naming the field, never its value) when ``data`` is not a clock setting."""
        try:
            offset = timedelta(seconds=float(data["verschuivingSeconden"]))
        except (KeyError, TypeError, ValueError, OverflowError):
            raise ValueError("verschuivingSeconden ontbreekt of is geen getal") from None
        try:
            set_at = datetime.fromisoformat(str(data["gezetOp"]))
        except (KeyError, TypeError, ValueError):
            raise ValueError("gezetOp ontbreekt of is geen tijdstip") from None
        if set_at.tzinfo is None:
            raise ValueError("gezetOp heeft geen tijdzone")
        return cls(offset, set_at.astimezone(UTC))


class SystemClock:
    """Real UTC time; the clock of every production service."""

    adjustable = False
    state = ClockState()

    def __call__(self) -> datetime:
        return system_now()


class AdjustableClock:
    """Real time plus an offset that test and training environments let functional admins set."""

    adjustable = True

    def __init__(self, real: Callable[[], datetime] = system_now) -> None:
        self._real = real
        self.state = ClockState()

    def __call__(self) -> datetime:
        return self._real() + self.state.offset

    def setting(self, moment: datetime | None) -> ClockState:
        """The setting that makes the clock read ``moment`` now and run on from there; None: back to real time."""
        real = self._real()
        if moment is None:
            return ClockState(timedelta(0), real)
        if moment.tzinfo is None:
            raise ValueError("a clock setting needs a timezone")
        return ClockState(moment.astimezone(UTC) - real, real)

    def apply(self, state: ClockState) -> bool:
        """Take ``state`` unless the clock holds a later setting; returns whether anything changed."""
        current = self.state
        if current.set_at is not None and (state.set_at is None or state.set_at < current.set_at):
            return False
        if state == current:
            return False
        self.state = state
        return True


class ClockRefused(SystemExit):
    """The process must not start: an adjustable clock in production would move legal deadlines."""

    def __init__(self, reason: str) -> None:
        super().__init__(EX_CONFIG)
        self.reason = reason


def make_clock(settings: ServiceSettings) -> Clock:
    """The clock ``settings`` ask for. Refuses (logs why, exits EX_CONFIG) an adjustable clock in production:
    there a deadline that moves with a setting is a wrong legal deadline, and production is also what a forgotten
    IPSFLOW_ENVIRONMENT means."""
    if not settings.adjustable_clock:
        return SystemClock()
    if settings.environment == "production":
        reason = ("IPSFLOW_ADJUSTABLE_CLOCK=true is only allowed with IPSFLOW_ENVIRONMENT=test or development; "
                  "this environment is production")
        configure_logging(settings.service_name, settings.log_level)
        log.error("service.refused", reason=reason, setting="adjustable_clock", environment=settings.environment)
        raise ClockRefused(reason)
    return AdjustableClock()


def _state_of(doc: Document) -> ClockState:
    set_at = doc.get("gezet_op")
    if isinstance(set_at, datetime) and set_at.tzinfo is None:
        set_at = set_at.replace(tzinfo=UTC)
    return ClockState(timedelta(seconds=float(doc.get("verschuiving_seconden") or 0.0)),
                      set_at if isinstance(set_at, datetime) else None)


class ClockKeeper:
    """Keeps an adjustable clock in the service's own database (collection ``klok``, one document) and applies
    the broadcast ``ips.klok.zetten.v1``."""

    def __init__(self, database: AsyncDatabase[Document], clock: AdjustableClock, service: str) -> None:
        self.store = DocumentStore(database, COLLECTION)
        self.clock = clock
        self.service = service
        #: Called after a write that put the broadcast in the outbox (the runtime wakes its relay).
        self.on_outbox: Callable[[str, AsyncCollection[Document]], None] = lambda _id, _c: None

    @property
    def collection(self) -> AsyncCollection[Document]:
        return self.store.collection

    async def load(self) -> None:
        """Take the stored setting (at start, and every few seconds for the other processes of this service)."""
        doc = await self.store.get(DOC_ID)
        if doc is not None and self.clock.apply(_state_of(doc)):
            log.warning("clock.followed", offset_seconds=self.clock.state.offset.total_seconds())

    async def set(self, moment: datetime | None) -> ClockState:
        """Set this service's clock to ``moment`` (None: real time) and broadcast the setting to every service.

        One single-document write holds both the new setting and the command in its outbox, so the broadcast
        leaves if and only if the setting was stored."""
        state = self.clock.setting(moment)
        command = new_event(CLOCK_COMMAND, service=self.service, subject=None,
                            data=state.to_data(system_now() + state.offset))
        await self._store(state, [(command, COMMANDS)], force=True)
        self.clock.apply(state)
        self.on_outbox(DOC_ID, self.collection)
        return state

    async def handle(self, command: CloudEvent) -> None:
        """``ips.klok.zetten.v1``: store and apply the setting unless a later one is already here. Idempotent:
        a redelivery, or an older setting that arrives late, changes nothing."""
        try:
            state = ClockState.from_data(command.data)
        except ValueError as exc:
            raise PoisonMessage(f"{CLOCK_COMMAND}: {exc}") from None
        await self._store(state, [], force=False)
        if self.clock.apply(state):
            log.warning("clock.moved", offset_seconds=state.offset.total_seconds(), by_message=command.id)

    async def _store(self, state: ClockState, events: list[tuple[CloudEvent, str]], force: bool) -> None:
        fields = {"verschuiving_seconden": state.offset.total_seconds(), "gezet_op": state.set_at}

        def zetten(doc: Document) -> list[tuple[CloudEvent, str]]:
            stored = _state_of(doc) if "revision" in doc else None
            if not force and stored is not None and stored.set_at is not None and state.set_at is not None \
                    and stored.set_at >= state.set_at:
                raise Unchanged  # a later (or the same) setting is stored already
            doc.update(fields)
            return events

        await UnitOfWork(self.store, DOCUMENT, name=COLLECTION).run(DOC_ID, zetten, create=lambda: {"_id": DOC_ID},
                                                                    reply=lambda written: written)

    async def follow(self, interval: float) -> None:
        """Re-read the stored setting every ``interval`` seconds: another process of this service may have
        consumed the broadcast (the service's queue gives each message to one of its consumers)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.load()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep following; the next round reads again
                log.warning("clock.refresh_failed", error=f"{type(exc).__name__}: {exc}")
