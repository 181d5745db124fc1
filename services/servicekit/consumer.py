"""The consumer runner: decode the envelope, run the handler, then acknowledge.

Contract for handlers: store the state change (and the message id it applied) in one single-document
write, then return. The runner acknowledges only after the handler returned, so a crash in between means a
redelivery, which the handler's idempotence turns into a no-op.

* malformed envelope, unknown type, ``PoisonMessage``, data that fails validation → parked in ``Q.dlq`` at once;
* any other exception → re-published to a retry wait queue with the attempt count, then acknowledged;
  after ``max_attempts`` attempts → parked. A lost database connection (PyMongo's ``ConnectionFailure``, server
  selection timeouts included) does not use up the last attempt: such a message retries until the database answers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import pydantic
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pymongo.errors import ConnectionFailure

from servicekit import metrics, tracing
from servicekit.broker import ATTEMPT_HEADER, DLX, ERROR_HEADER, QUEUE_HEADER, Binding, Broker
from servicekit.envelope import CloudEvent
from servicekit.logging import bound_context, get_logger

log = get_logger(__name__)

Handler = Callable[[CloudEvent], Awaitable[None]]


class PoisonMessage(Exception):
    """The message can never be handled (wrong data for its type, violates a contract): park it."""


class Consumer:
    def __init__(self, broker: Broker, queue: str, handlers: Mapping[str, Handler],
                 bindings: Sequence[Binding], fallback: Handler | None = None) -> None:
        self.broker = broker
        self.fallback = fallback
        self.queue = queue
        self.handlers = dict(handlers)
        self.bindings = list(bindings)
        self.settings = broker.settings
        self._channel: AbstractChannel | None = None
        self.handled = 0

    async def start(self) -> None:
        self._channel = await self.broker.new_channel(self.settings.prefetch)
        queue = await self.broker.declare_consumer_queue(self._channel, self.queue, self.bindings)
        await queue.consume(self._on_message)
        log.info("consumer.started", queue=self.broker.name(self.queue), types=sorted(self.handlers) or ["*"])

    async def stop(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        headers: dict[str, Any] = dict(message.headers or {})
        attempt = int(str(headers.get(ATTEMPT_HEADER, 0)))
        try:
            event = CloudEvent.from_json(message.body)
        except (pydantic.ValidationError, ValueError) as exc:
            metrics.message_failed(self.queue, "(onleesbaar)", "parked", None)
            await self._park(message, headers, f"malformed envelope: {_short(exc)}")
            return
        handler = self.handlers.get(event.type) or self.fallback
        if handler is None:
            metrics.message_failed(self.queue, "(onbekend)", "parked", None)  # not a label per stray type
            await self._park(message, headers, f"no handler for type {event.type}")
            return
        started = time.perf_counter()
        # Inside the message's trace: what the handler publishes stays in it (servicekit.tracing).
        with (tracing.continued(event.traceparent, event.type, attributes={"messaging.destination": self.queue})
              as trace_id,
              bound_context(correlation_id=event.correlationid, case_id=event.subject, message_id=event.id,
                            message_type=event.type, trace_id=trace_id)):
            try:
                await handler(event)
            except (PoisonMessage, pydantic.ValidationError) as exc:
                metrics.message_failed(self.queue, event.type, "parked", time.perf_counter() - started)
                await self._park(message, headers, f"poison: {_short(exc)}")
                return
            except Exception as exc:  # transient until proven otherwise: retry with delay
                following = attempt + 1
                if isinstance(exc, ConnectionFailure):
                    # The database away or a connection to it cut is no fault of the message: it waits (up to the
                    # last tier's delay) and keeps one attempt, so it is never parked for this. Cuts used to park
                    # good messages after four of them, and their cases stood still until an admin replayed them.
                    following = max(1, min(following, self.settings.max_attempts - 1))
                parked = following >= self.settings.max_attempts
                metrics.message_failed(self.queue, event.type, "parked" if parked else "retry",
                                       time.perf_counter() - started)
                await self._retry_or_park(message, headers, following, exc)
                return
            await message.ack()
            self.handled += 1
            metrics.message_handled(self.queue, event.type, time.perf_counter() - started)

    async def _retry_or_park(self, message: AbstractIncomingMessage, headers: dict[str, Any], attempt: int,
                             exc: Exception) -> None:
        if attempt >= self.settings.max_attempts:
            await self._park(message, headers, f"failed {attempt} times, last: {_short(exc)}")
            return
        log.warning("message.retry", attempt=attempt, error=_short(exc))
        headers[ATTEMPT_HEADER] = attempt
        headers[ERROR_HEADER] = _short(exc)
        await self.broker.publish_raw("", self.broker.retry_queue(self.queue, attempt), message.body,
                                      message_id=message.message_id, type_=message.type,
                                      correlation_id=message.correlation_id, headers=headers)
        await message.ack()

    async def _park(self, message: AbstractIncomingMessage, headers: dict[str, Any], reason: str) -> None:
        log.error("message.parked", queue=self.broker.name(self.queue), reason=reason)
        headers[ERROR_HEADER] = reason
        headers[QUEUE_HEADER] = self.queue
        await self.broker.publish_raw(DLX, f"{self.broker.name(self.queue)}.dlq", message.body,
                                      message_id=message.message_id, type_=message.type,
                                      correlation_id=message.correlation_id, headers=headers)
        await message.ack()


def _short(exc: BaseException) -> str:
    """A one-line reason that never quotes the input (validation errors could otherwise echo personal data)."""
    if isinstance(exc, pydantic.ValidationError):
        details = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        text = f"ValidationError: {details}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 500 else text[:497] + "..."
