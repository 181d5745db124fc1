"""intake reads an aanvraag once per command it handles (issue 14: reads after reads cost FerretDB a decode each).
Real FerretDB; the commands counted with a command listener."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import monitoring

from intake.opdrachten import IntakeCommands
from intake.repository import AanvraagRepository, to_doc
from servicekit.envelope import new_event
from tests.conftest import listened_client
from tests.unit.test_intake_domain import aanvraag


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []  # (command, collection)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.seen.append((event.command_name, str(event.command.get(event.command_name))))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


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
