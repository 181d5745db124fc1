"""What officials and beheer do to a case (split from engine.py): complete or claim a user task, retry an
incident, cancel, migrate. Each is one change through the engine's ``_mutate`` (load, apply, revision-checked
write); ``Engine`` inherits these, and the exceptions the API maps to 404 and 409 live here."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from process_engine import runtime as rt
from servicekit.store import Document


class NotFound(LookupError):
    pass


class CaseNotYetKnown(Exception):
    """A message for a case that does not exist (yet): transient, so the consumer retries it with delay
    (the start event may still be in flight) and parks it for an admin after the last attempt."""


class Conflict(ValueError):
    """The request does not fit the instance's current state (409)."""


#: Who claimed it stays out of the answer: the other official's id is not the caller's business.
CLAIMED_BY_OTHER = "Deze taak is geclaimd door een andere behandelaar."



class EngineActions:
    """The user-task and admin actions of :class:`process_engine.engine.Engine`."""

    if TYPE_CHECKING:  # provided by Engine
        async def parsed(self, content_hash: str) -> rt.ParsedDefinition: ...

        async def _mutate(self, case_id: str, message_id: str | None,
                          apply: Callable[[Any, Document], list[rt.PendingCommand] | None], *,
                          missing_ok: bool = False, user_action: bool = False) -> Document: ...

        def _after(self, wf: Any, doc: Document, result: rt.StepResult) -> list[rt.PendingCommand]: ...

        def _journal(self, doc: Document, what: str, **details: Any) -> None: ...

    async def complete_user_task(self, case_id: str, task_id: str, data: dict[str, Any], by: str,
                                 signer: dict[str, Any] | None = None) -> Document:
        """Complete a user task with the form ``data``. ``signer`` (subject, naam, mandaten of the official) is
        recorded in the task data as ``ondertekenaar``: a decision names who took it (Awb 10:10)."""
        def apply(wf: Any, doc: Document) -> list[rt.PendingCommand]:
            task = next((t for t in doc.get("user_tasks", []) if t["taskId"] == task_id), None)
            if task is None:
                raise NotFound(f"task {task_id}")
            if task.get("claimedBy") and task["claimedBy"] != by:
                raise Conflict(CLAIMED_BY_OTHER)
            recorded = {"ondertekenaar": signer} if signer is not None else None
            result = rt.complete_user_task(wf, task_id, data, recorded)
            self._journal(doc, "taak afgerond", element=task["elementId"], by=by)
            return self._after(wf, doc, result)
        return await self._mutate(case_id, None, apply, user_action=True)

    async def claim(self, case_id: str, task_id: str, by: str | None, *, releaser: str | None = None) -> Document:
        """Claim the task for ``by``, or release it (``by`` None) on behalf of ``releaser``: only the official
        who claimed a task may release it, else another could take over a colleague's work (409)."""
        def apply(_wf: Any, doc: Document) -> list[rt.PendingCommand]:
            for t in doc.get("user_tasks", []):
                if t["taskId"] == task_id:
                    if by and t.get("claimedBy") not in (None, by):
                        raise Conflict(CLAIMED_BY_OTHER)
                    if by is None and releaser is not None and t.get("claimedBy") not in (None, releaser):
                        raise Conflict(CLAIMED_BY_OTHER + " Alleen wie haar claimde, kan haar vrijgeven.")
                    t["claimedBy"] = by
                    self._journal(doc, "taak geclaimd" if by else "taak vrijgegeven", element=t["elementId"])
                    return []
            raise NotFound(f"task {task_id}")
        return await self._mutate(case_id, None, apply)

    async def retry_incident(self, case_id: str, command_id: str, by: str,
                             variables: dict[str, Any] | None = None) -> Document:
        """Re-issue the command behind an open incident; with ``variables`` (checked by the caller against
        ``zaakvariabelen.bewerkbare_variabelen``) set on its task first, so the new command carries them."""
        def apply(wf: Any, doc: Document) -> list[rt.PendingCommand]:
            open_ = [i for i in doc.get("incidents", []) if i["commandId"] == command_id and not i["resolved"]]
            if not open_:
                raise NotFound(f"open incident for command {command_id}")
            if variables:
                rt.set_incident_variables(wf, command_id, variables)
                self._journal(doc, "variabelen gewijzigd", command=command_id, names=sorted(variables), by=by)
            result = rt.retry_incident(wf, command_id)
            for incident in open_:
                incident["resolved"] = True
                incident["resolvedBy"] = by
            self._journal(doc, "incident opnieuw geprobeerd", command=command_id, by=by)
            return self._after(wf, doc, result)
        return await self._mutate(case_id, None, apply, user_action=True)

    async def cancel(self, case_id: str, by: str) -> Document:
        def apply(wf: Any, doc: Document) -> list[rt.PendingCommand]:
            wf.cancel()
            doc["status"] = "cancelled"
            self._journal(doc, "geannuleerd", by=by)
            return []
        return await self._mutate(case_id, None, apply, user_action=True)

    async def migrate(self, case_id: str, target_hash: str, by: str) -> Document:
        target = await self.parsed(target_hash)

        def apply(wf: Any, doc: Document) -> list[rt.PendingCommand]:
            if doc["definition_hash"] == target_hash:
                raise Conflict("instance already runs on this definition")
            dropped = rt.migrate(wf, target)
            doc["definition_hash"] = target_hash
            self._journal(doc, "gemigreerd", to=target_hash[:12], by=by, dropped=dropped)
            return self._after(wf, doc, rt.step(wf))
        return await self._mutate(case_id, None, apply, user_action=True)
