"""Answering engine commands: the reply protocol of bpmn/README.md, applied once per command.

A service that handles a command changes one aggregate document and puts its reply event
(``ips.opdracht.voltooid.v1`` or ``ips.opdracht.mislukt.v1``) in that same document's outbox, together with
the command id in ``applied``. A redelivered command finds its id there and changes nothing; the relay
publishes the reply exactly as stored, so even a crash between write and publish answers exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from servicekit.broker import EVENTS
from servicekit.consumer import PoisonMessage
from servicekit.envelope import CloudEvent, new_event
from servicekit.store import Document
from servicekit.unit_of_work import DOCUMENT, READ, Current, Events, Store, UnitOfWork

COMMAND_COMPLETED = "ips.opdracht.voltooid.v1"
COMMAND_FAILED = "ips.opdracht.mislukt.v1"


@dataclass(frozen=True)
class Failure:
    """A business failure the BPMN can catch with an error boundary on ``code``."""

    code: str
    message: str


Outcome = dict[str, Any] | Failure
M = TypeVar("M", bound=BaseModel)


def command_params(model: type[M], command: CloudEvent) -> M:
    """The command's parameters as ``model``; PoisonMessage (straight to the dlq) when the command has no case
    id or its data does not fit. The reason names the fields, never their values."""
    if not command.subject:
        raise PoisonMessage(f"{command.type}: command without subject (case id)")
    try:
        return model.model_validate(command.data)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        raise PoisonMessage(f"{command.type}: invalid parameters: {fields}") from None


def reply_to(command: CloudEvent, service: str, outcome: Outcome) -> CloudEvent:
    """The reply event for ``command``; its id is derived from the command id, so a re-run produces the same."""
    if isinstance(outcome, Failure):
        type_, data = COMMAND_FAILED, {"code": outcome.code, "message": outcome.message}
    else:
        type_, data = COMMAND_COMPLETED, outcome
    return new_event(type_, service=service, subject=command.subject, data=data, caused_by=command,
                     event_id=f"{command.id}:antwoord")


async def apply_command(store: Store, doc_id: str, command: CloudEvent, service: str,
                        apply: Callable[[Document], Outcome | None],
                        create: Callable[[], Document] | None = None,
                        current: Current = READ) -> Document:
    """The unit of work (servicekit.unit_of_work) with the document itself as the aggregate: load ``doc_id`` (or
    insert ``create()``), let ``apply`` change it in place and return the outcome, then write the change, the
    command id and the reply in one revision-checked update.

    ``apply`` returning None means: no reply now (someone else answers later, e.g. a batch job). A document
    that already holds the command id is returned unchanged. Raises LookupError when the document does not
    exist and there is no ``create``. ``current``: the document as the caller just read it (None: it found none),
    used instead of a read on the first attempt (``UnitOfWork.run``).
    """
    done = await UnitOfWork(store, DOCUMENT).run(doc_id, apply, message_id=command.id, create=create,
                                                 reply=replying(command, service), current=current)
    return done.doc


def replying(command: CloudEvent, service: str) -> Callable[[Outcome | None], Events]:
    """The ``reply`` of a unit of work that answers ``command``: its reply event, none for a None outcome."""
    def reply(outcome: Outcome | None) -> Events:
        return [] if outcome is None else [(reply_to(command, service, outcome), EVENTS)]
    return reply
