"""What the console reads: the engine's HTTP API (with the signed-in user's own token) and RabbitMQ's
management API (with the console's credentials, which stay on the server)."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import aio_pika
import httpx

from console.settings import ConsoleSettings
from servicekit.broker import ATTEMPT_HEADER, ERROR_HEADER
from servicekit.http import API_PREFIX
from servicekit.queue_stats import queue_depths
from servicekit.tracing import httpx_request_hook

#: One page of the engine's case list; the console asks page after page until it has every match.
ENGINE_PAGE = 1000
#: The page size asked of the engine's cursor-paged lists (its maximum).
ENGINE_LIST_PAGE = 500
#: How many parked messages per dead-letter queue the case page looks through for the case's own.
DLQ_PEEK = 500


class BackendError(RuntimeError):
    """A service did not answer as documented; the page says which one, never the raw answer."""

    def __init__(self, service: str, status: int | None) -> None:
        super().__init__(f"{service} antwoordde niet zoals verwacht ({status or 'geen verbinding'})")
        self.service = service
        self.status = status


class Backends:
    def __init__(self, settings: ConsoleSettings) -> None:
        self.settings = settings
        # The page's trace goes on into the services it calls (servicekit.tracing).
        self.http = httpx.AsyncClient(timeout=15, event_hooks={"request": [_traced]})

    async def close(self) -> None:
        await self.http.aclose()

    async def _engine(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self.http.request(method, f"{self.settings.console_engine_url}{API_PREFIX}{path}",
                                           headers={"Authorization": f"Bearer {token}"}, **kwargs)
        except httpx.HTTPError as exc:
            raise BackendError("de procesengine", None) from exc

    async def _engine_json(self, path: str, token: str, **params: Any) -> Any:
        response = await self._engine("GET", path, token, params={k: v for k, v in params.items() if v is not None})
        if response.status_code != 200:
            raise BackendError("de procesengine", response.status_code)
        return response.json()

    async def _engine_all(self, path: str, token: str) -> list[dict[str, Any]]:
        """Every page of an engine list (pageSize, the next page behind Link rel="next"), as one list."""
        out: list[dict[str, Any]] = []
        response = await self._engine("GET", path, token, params={"pageSize": ENGINE_LIST_PAGE})
        while True:
            if response.status_code != 200:
                raise BackendError("de procesengine", response.status_code)
            out.extend(response.json())
            following = response.links.get("next", {}).get("url")
            if not following:
                return out
            try:
                response = await self.http.get(following, headers={"Authorization": f"Bearer {token}"})
            except httpx.HTTPError as exc:
                raise BackendError("de procesengine", None) from exc

    async def zaken(self, token: str, **filters: Any) -> list[dict[str, Any]]:
        """Every case that matches the filters (``Filters.engine_filters``), page after page."""
        out: list[dict[str, Any]] = []
        while True:
            page = await self._engine_json("/zaken", token, limit=ENGINE_PAGE, offset=len(out), **filters)
            out.extend(page["zaken"])
            if not page["zaken"] or len(out) >= page["totaal"]:
                return out

    async def zaken_pagina(self, token: str, offset: int, limit: int,
                           **filters: Any) -> tuple[int, list[dict[str, Any]]]:
        """One page of the cases that match every filter (the engine filters and pages), and how many match."""
        page = await self._engine_json("/zaken", token, limit=limit, offset=offset, **filters)
        return page["totaal"], page["zaken"]

    async def zaak(self, token: str, case_id: str) -> dict[str, Any] | None:
        response = await self._engine("GET", f"/zaken/{urllib.parse.quote(case_id, safe='')}", token)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise BackendError("de procesengine", response.status_code)
        return response.json()  # type: ignore[no-any-return]

    async def definities(self, token: str) -> list[dict[str, Any]]:
        return await self._engine_all("/procesdefinities", token)

    async def definitie(self, token: str, content_hash: str) -> dict[str, Any]:
        path = f"/procesdefinities/{urllib.parse.quote(content_hash, safe='')}"
        return await self._engine_json(path, token)  # type: ignore[no-any-return]

    async def dienst(self, naam: str, base: str, path: str, token: str, **params: Any) -> Any:
        """GET from another service's API with the user's token; None when it has nothing (404)."""
        try:
            response = await self.http.get(f"{base}{API_PREFIX}{path}", params=params,
                                           headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise BackendError(naam, None) from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise BackendError(naam, response.status_code)
        return response.json()

    async def incidenten(self, token: str) -> list[dict[str, Any]]:
        """Every open incident of every running case, one row per incident."""
        return await self._engine_all("/incidenten", token)

    async def statistiek(self, token: str, content_hash: str) -> dict[str, Any]:
        """Per element of one process version: cases active there, with an open incident, completed."""
        path = f"/procesdefinities/{urllib.parse.quote(content_hash, safe='')}/statistiek"
        return await self._engine_json(path, token)  # type: ignore[no-any-return]

    async def actie(self, token: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """A retry or cancel through the engine, with the engine's own answer (the outcome the user sees)."""
        response = await self._engine("POST", path, token, **({"json": body} if body is not None else {}))
        try:
            body = response.json()
        except ValueError:
            body = {}
        return response.status_code, body if isinstance(body, dict) else {}

    async def wachtrijen(self) -> list[dict[str, Any]]:
        """Per queue of this namespace: ready, unacked, consumers, retrying and parked (dead letters)."""
        s = self.settings
        vhost = urllib.parse.quote(urllib.parse.urlparse(s.amqp_url).path.lstrip("/") or "/", safe="")
        try:
            response = await self.http.get(
                f"{s.rabbitmq_management_url}/api/queues/{vhost}",
                auth=(s.rabbitmq_management_user, s.rabbitmq_management_password.get_secret_value()))
        except httpx.HTTPError as exc:
            raise BackendError("RabbitMQ (beheer-API)", None) from exc
        if response.status_code != 200:
            raise BackendError("RabbitMQ (beheer-API)", response.status_code)
        return queue_rows(response.json(), s.namespace)


async def dead_letters_of(amqp_url: str, queues: list[str], case_id: str) -> list[dict[str, Any]]:
    """The parked messages of one case in these dead-letter queues: type, id, attempts and why it was parked;
    never the body (it can hold personal data). Read over AMQP and all put back (requeued), as ``ipsflow dlq show``
    does; at most DLQ_PEEK messages per queue are looked at."""
    found: list[dict[str, Any]] = []
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for name in queues:
            dlq = await channel.get_queue(name, ensure=True)
            held = []
            try:
                for _ in range(DLQ_PEEK):
                    message = await dlq.get(no_ack=False, fail=False)
                    if message is None:
                        break
                    held.append(message)
                    try:
                        envelope = json.loads(message.body)
                    except ValueError:
                        continue
                    if not isinstance(envelope, dict) or envelope.get("subject") != case_id:
                        continue
                    headers = message.headers or {}
                    found.append({"wachtrij": name, "type": envelope.get("type"), "id": message.message_id,
                                  "causatie": envelope.get("causationid"),
                                  "pogingen": headers.get(ATTEMPT_HEADER, 0),
                                  "reden": str(headers.get(ERROR_HEADER, ""))[:300]})
            finally:
                for message in held:
                    await message.nack(requeue=True)
    return found


def queue_rows(raw: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    rows = []
    for depth in queue_depths(raw, namespace):
        name: str = depth.queue["name"]
        rows.append({
            "naam": name[len(namespace):] or name,
            "dlq": f"{name}.dlq" if depth.dlq else None,
            "klaar": depth.queue.get("messages_ready", 0),
            "onbevestigd": depth.queue.get("messages_unacknowledged", 0),
            "consumers": depth.queue.get("consumers", 0),
            "opnieuw": depth.retrying,
            "geparkeerd": depth.dlq.get("messages", 0) if depth.dlq else 0,
            "volledig": name,
            # the management API's rates (messages a second, sampled): published in, delivered, acknowledged
            "in_per_s": _rate(depth.queue, "publish"), "uit_per_s": _rate(depth.queue, "deliver_get"),
            "ack_per_s": _rate(depth.queue, "ack"),
        })
    return sorted(rows, key=lambda r: r["naam"])


def _rate(queue: dict[str, Any], what: str) -> float:
    return round(float(((queue.get("message_stats") or {}).get(f"{what}_details") or {}).get("rate", 0.0)), 1)


async def _traced(request: httpx.Request) -> None:
    httpx_request_hook(request)
