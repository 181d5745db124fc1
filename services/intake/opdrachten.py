"""The engine's commands to intake (bpmn/README.md): each a revision-checked change of the application through
servicekit's unit of work (the ``Aanvraag`` aggregate), which records the command id, so a redelivered command
changes nothing and is answered with the same reply id. The portal's own actions are ``handlers``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from intake.domain import Aanvraag, Gemeenteregister
from intake.messages import BesluitRegistrerenParams, DoorzendenParams, HerstelVragenParams, VolledigheidParams
from intake.repository import AANVRAAG, SERVICE, AanvraagRepository, from_doc, millis
from intake.stand import stand
from servicekit.commands import Failure, replying
from servicekit.consumer import PoisonMessage
from servicekit.envelope import CloudEvent, deterministic_id
from servicekit.logging import get_logger
from servicekit.relay import Wake, no_relay
from servicekit.unit_of_work import READ, Current, Missing, UnitOfWork

log = get_logger(__name__)


@dataclass
class IntakeCommands:
    aanvragen: AanvraagRepository
    gemeenten: Gemeenteregister
    vereiste_bijlagen: tuple[str, ...] = ()
    wake: Wake = no_relay

    async def volledigheid_controleren(self, command: CloudEvent) -> None:
        params = VolledigheidParams.model_validate(command.data)
        # complete without a volgnummer (an upload after the submission completed it): it gets its place in the
        # order of receipt here; a redelivered command takes none
        doc = await self.aanvragen.get_document(params.aanvraag_id)
        nummer = (await self.aanvragen.volgend_volgnummer()
                  if doc is not None and command.id not in (doc.get("applied") or [])
                  and from_doc(doc).mist_volgnummer(self.vereiste_bijlagen) else None)

        def check(a: Aanvraag) -> dict[str, Any]:
            stand(a).beslistermijn(params.beslisdatum, params.opgeschorte_dagen)  # the portal's decision date
            if nummer is not None and a.mist_volgnummer(self.vereiste_bijlagen):
                a.volgnummer_toekennen(nummer)
            return a.volledigheid_controleren(self.vereiste_bijlagen)

        await self._apply(command, params.aanvraag_id, check, current=doc)  # read once: the check's own read

    async def herstel_vragen(self, command: CloudEvent) -> None:
        params = HerstelVragenParams.model_validate(command.data)
        await self._apply(command, params.aanvraag_id,
                          lambda a: a.herstel_vragen(params.ontbrekend, params.hersteltermijn, millis(command.time)))

    async def doorzenden(self, command: CloudEvent) -> None:
        params = DoorzendenParams.model_validate(command.data)
        gemeenten = self.gemeenten
        registratie = deterministic_id("intake-brief", command.id)

        def forward(a: Aanvraag) -> dict[str, Any] | Failure:
            if not gemeenten.geldig_op(params.naar_gemeente_code, a.aanvraagdatum):
                return Failure("IPS-INTAKE-GEMEENTE", "De gemeente bestond niet op de aanvraagdatum.")
            return a.doorzenden(params.naar_gemeente_code, params.mededeling, registratie)

        await self._apply(command, params.aanvraag_id, forward)

    async def besluit_registreren(self, command: CloudEvent) -> None:
        """Record the letter by reference (its beschikking id); its text and PDF are notifications' to keep
        (README, "Letters"): intake stores no copy."""
        params = BesluitRegistrerenParams.model_validate(command.data)
        registratie = deterministic_id("intake-brief", command.id)
        def register(a: Aanvraag) -> dict[str, Any]:
            stand(a).brief(params.beschikking, params.startdatum, params.einddatum)  # 4:14, extension, trajectory
            return a.besluit_registreren(params.status, registratie, params.beschikking)

        await self._apply(command, params.aanvraag_id, register)

    async def _apply(self, command: CloudEvent, aanvraag_id: str,
                     action: Callable[[Aanvraag], dict[str, Any] | Failure], current: Current = READ) -> None:
        """``action`` on the aanvraag through the unit of work; ``current``: the document as the caller just read
        it (None: none), used instead of a read on the first attempt."""
        try:
            done = await UnitOfWork(self.aanvragen.store, AANVRAAG, name="aanvragen").run(
                aanvraag_id, action, message_id=command.id, reply=replying(command, SERVICE), current=current)
        except Missing:
            raise PoisonMessage(f"unknown aanvraag {aanvraag_id}") from None
        log.info("opdracht.verwerkt", aanvraag_id=aanvraag_id, command=command.type)
        self.wake(aanvraag_id, self.aanvragen.collection, done.doc)
