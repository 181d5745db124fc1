"""A command's handler reads its document once: intake's completeness check (the aanvraag) and payments' orders
(the case) hand what they read to the unit of work that writes it (issue 14: each read costs FerretDB a decode and
the service a round trip). Real FerretDB; the commands counted with a command listener."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import monitoring

from intake.opdrachten import IntakeCommands
from intake.repository import AanvraagRepository, to_doc
from payments.bootstrap import REKENINGEN_FILE, load_rekeningen
from payments.handlers import PaymentsHandlers
from payments.repository import PaymentsRepository
from servicekit.envelope import new_event
from tests.conftest import StartedListener, listened_client
from tests.integration.test_payments_flow import AANMAKEN, aanmaken
from tests.unit.test_intake_domain import aanvraag


class Commands(StartedListener):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []  # (command, collection)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.seen.append((event.command_name, str(event.command.get(event.command_name))))


@pytest.fixture
async def counted(infra: Any) -> Any:
    commands = Commands()
    async with listened_client(infra, commands) as client:
        yield client, commands


async def test_the_completeness_check_reads_the_aanvraag_once_and_numbers_it(counted: Any, namespace: str) -> None:
    client, commands = counted
    repo = AanvraagRepository(client[f"{namespace}intake".replace(".", "_")])
    a = aanvraag()
    a.events.clear()
    await repo.store.insert(to_doc(a))
    replies: list[Any] = []
    handler = IntakeCommands(aanvragen=repo, gemeenten=None)  # type: ignore[arg-type]  # not used by the check
    handler.wake = lambda *args: replies.append(args)
    commands.seen.clear()

    command = new_event("ips.aanvraag.volledigheid_controleren.v1", service="process_engine", subject=a.id,
                        data={"aanvraag_id": a.id}, event_id="cmd-check-1")
    await handler.volledigheid_controleren(command)
    finds = [c for c in commands.seen if c == ("find", "aanvragen")]
    assert len(finds) == 1, commands.seen  # the check's read serves the unit of work too
    stored = await repo.store.get(a.id)
    assert stored is not None and stored["volgnummer"] == 1 and "cmd-check-1" in stored["applied"]
    assert "ips.opdracht.voltooid.v1" in [entry["routing_key"] for entry in stored["outbox"]]  # the reply

    commands.seen.clear()
    await handler.volledigheid_controleren(command)  # redelivered: no second number, no second reply
    again = await repo.store.get(a.id)
    assert again is not None and again["volgnummer"] == 1 and again["revision"] == stored["revision"]


async def test_the_orders_command_reads_the_payment_case_once(counted: Any, namespace: str) -> None:
    client, commands = counted
    repo = PaymentsRepository(client[f"{namespace}payments".replace(".", "_")])
    handlers = PaymentsHandlers(repo, load_rekeningen(REKENINGEN_FILE), wake=lambda *a, **k: None)
    for aanvraag_id, command_id in (("P-1", "cmd-p-1"), ("P-1", "cmd-p-2")):  # a new case, then a stored one
        commands.seen.clear()
        await handlers.opdrachten_aanmaken(new_event(AANMAKEN, service="process_engine", subject=aanvraag_id,
                                                     data=aanmaken(aanvraag_id), event_id=command_id))
        reads = [c for c in commands.seen if c == ("find", "zaken")]
        assert len(reads) == 1, commands.seen
    zaak = await repo.zaken.get("P-1")
    assert zaak is not None and {"cmd-p-1", "cmd-p-2"} <= set(zaak["applied"]) and len(zaak["opdrachten"]) == 1
