"""Fault injection for the crash tests, installed from outside the services (the services hold no fault switch).

``python -m tests.support.faults <package>`` starts a service exactly as ``python -m <package>`` would, after
installing the fault named by ``IPSFLOW_TEST_FAULT`` (read here only; ``ServiceProcess.start`` takes this entry
point when a test sets it). Each fault wraps a seam of the production code from the outside:

* ``consumer-exit-before-ack``: the process exits (70) after a handler returned, before the runner acknowledges;
* ``relay-exit-after-publish``: the relay exits (71) after the broker confirmed, before it clears the outbox
  (the relay's ``OutboxRelay.before_clear`` hook);
* ``payments-exit-mid-batch`` / ``payments-hang-mid-batch``: a batch claims half of its first orders, then the
  process exits (70) or waits for the test to SIGKILL it (``FaultyPaymentsRepository``, also used in-process).
"""

from __future__ import annotations

import asyncio
import functools
import os
import runpy
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from payments.domain import IN_BATCH
from payments.repository import PaymentsRepository
from servicekit import consumer, relay
from servicekit.consumer import Handler
from servicekit.logging import get_logger
from servicekit.store import Document
from tests.support.processes import FAULT_ENV

log = get_logger(__name__)


class FaultyPaymentsRepository(PaymentsRepository):
    """Payments' repository that stops a batch between claiming the first half of its orders and the rest."""

    def __init__(self, db: Any, fault: str) -> None:
        super().__init__(db)
        self.fault = fault

    async def in_bulk_zetten(self, opdrachten: Sequence[Document], van: str, velden: Mapping[str, Any],
                             pogingen: int = 5) -> list[Document]:
        if not (self.fault and velden.get("status") == IN_BATCH and len(opdrachten) > 1):
            return await super().in_bulk_zetten(opdrachten, van, velden, pogingen)
        await super().in_bulk_zetten(opdrachten[:len(opdrachten) // 2], van, velden, pogingen)
        log.warning("fault.injected", fault=self.fault, batch_id=velden.get("batch_id"))
        if self.fault == "payments-exit-mid-batch":
            os._exit(70)
        await asyncio.sleep(3600)  # payments-hang-mid-batch: the test kills the process (or cancels) here
        raise AssertionError("the fault should have been ended by the test")


def _exit_after_handlers(code: int) -> None:
    original = consumer.Consumer.__init__

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def handle(event: Any) -> None:
            await handler(event)
            log.warning("fault.injected", fault="consumer-exit-before-ack")
            os._exit(code)
        return handle

    def init(self: consumer.Consumer, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.handlers = {t: wrap(h) for t, h in self.handlers.items()}
        self.fallback = wrap(self.fallback) if self.fallback is not None else None

    consumer.Consumer.__init__ = init  # type: ignore[method-assign]


def _exit_before_clear(code: int) -> None:
    async def before_clear(published: set[str]) -> None:
        log.warning("fault.injected", fault="relay-exit-after-publish", events=len(published))
        # The relay runs beside the request that wrote the document: without a pause the exit raced that
        # request's answer, and the test's POST got a dropped connection now and then. The outbox still holds
        # the published events while we wait; the relay does nothing else meanwhile.
        await asyncio.sleep(1.0)
        os._exit(code)

    relay.OutboxRelay.before_clear = before_clear


def _payments_mid_batch(fault: str) -> None:
    import payments.bootstrap

    payments.bootstrap.PaymentsRepository = functools.partial(  # type: ignore[misc]
        FaultyPaymentsRepository, fault=fault)


def install(fault: str) -> None:
    if fault == "consumer-exit-before-ack":
        _exit_after_handlers(70)
    elif fault == "relay-exit-after-publish":
        _exit_before_clear(71)
    elif fault in ("payments-exit-mid-batch", "payments-hang-mid-batch"):
        _payments_mid_batch(fault)
    elif fault:
        raise SystemExit(f"unknown fault {fault!r}")


if __name__ == "__main__":
    package = sys.argv[1]
    install(os.environ.get(FAULT_ENV, ""))
    sys.argv = [package]
    runpy.run_module(package, run_name="__main__", alter_sys=True)
