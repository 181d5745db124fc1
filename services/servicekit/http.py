"""FastAPI edges shared by the services: problem+json errors, body limit, offline API docs, health.

Errors follow RFC 9457. Validation problems are 400 and name every invalid field in ``invalidParams``
(NL API Design Rules), in the camelCase spelling the client sent; input values are never echoed back,
so a rejected BSN does not travel into logs or proxies.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import swagger_ui_bundle
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM = "application/problem+json"
API_VERSION = "1.0.0"
API_PREFIX = "/api/v1"


def problem(status: int, title: str, detail: str | None = None, *, type_: str = "about:blank",
            invalid_params: list[dict[str, str]] | None = None, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if invalid_params:
        body["invalidParams"] = invalid_params
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field_name(loc: tuple[Any, ...]) -> str:
    # Only the first element names where the value came from; a field may itself be called "path" or "body".
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:]
    return ".".join(str(p) for p in loc) or "body"


_REASONS = {
    "json_invalid": "is geen geldige JSON",
    "extra_forbidden": "is geen bekend veld",
    "missing": "is verplicht",
}


def validation_problem(errors: list[dict[str, Any]] | Any) -> JSONResponse:
    invalid = []
    for err in errors:
        loc = tuple(err.get("loc", ()))
        kind = err.get("type", "")
        name = "body" if kind == "json_invalid" else _field_name(loc)
        invalid.append({"name": name, "code": kind, "reason": _REASONS.get(kind, err.get("msg", ""))})
    return problem(400, "Ongeldige invoer", "Een of meer velden zijn ongeldig; er is niets opgeslagen.",
                   type_="https://ipsflow.nl/problems/ongeldige-invoer", invalid_params=invalid)


class BodyLimitMiddleware:
    """Refuses a request body over ``max_bytes`` before the application reads it (400, field ``body``).

    ``overrides`` give other limits to routes whose path matches a regular expression (a document upload);
    the first match wins, every other route keeps ``max_bytes``.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, overrides: Sequence[tuple[str, int]] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = [(re.compile(pattern), limit) for pattern, limit in overrides]

    def limit_for(self, path: str) -> int:
        return next((limit for pattern, limit in self.overrides if pattern.fullmatch(path)), self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit_for(scope.get("path", ""))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await self._refuse(scope, receive, send, max_bytes)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            more = message.get("more_body", False)
            if len(body) > max_bytes:
                await self._refuse(scope, receive, send, max_bytes)
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        response = problem(400, "Verzoek te groot",
                           f"De body is groter dan {max_bytes} bytes; er is niets opgeslagen.",
                           type_="https://ipsflow.nl/problems/body-te-groot",
                           invalid_params=[{"name": "body", "code": "too_large",
                                            "reason": f"groter dan {max_bytes} bytes"}])
        await response(scope, receive, send)


_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def trace_id_from(traceparent: str) -> str:
    """The W3C trace id of a request (from ``traceparent`` when the caller sent a valid one, else a new one).

    Every response carries it as ``X-Trace-Id``; error bodies and the audit log name it, so a user's report and
    the logs meet without anything personal in between.
    """
    match = _TRACEPARENT.fullmatch(traceparent.strip().lower())
    if match and match.group(1) != "0" * 32:
        return match.group(1)
    return uuid.uuid4().hex


def request_trace_id(request: Request) -> str:
    """The trace id the middleware gave this request (a new one outside the middleware, e.g. in unit tests)."""
    return str(getattr(request.state, "trace_id", "") or uuid.uuid4().hex)


def create_app(title: str, description: str, *, max_body_bytes: int = 64 * 1024,
               lifespan: Any = None, body_limits: Sequence[tuple[str, int]] = ()) -> FastAPI:
    """A FastAPI app with ipsflow's conventions: /api/v1 docs without CDN, problem+json, API-Version.

    ``body_limits``: (path regex, bytes) pairs for routes that take larger bodies than ``max_body_bytes``.
    """
    app = FastAPI(title=title, description=description, version=API_VERSION, lifespan=lifespan,
                  openapi_url=f"{API_PREFIX}/openapi.json", docs_url=None, redoc_url=None)
    static = Path(swagger_ui_bundle.swagger_ui_path)
    app.mount(f"{API_PREFIX}/docs/static", StaticFiles(directory=static), name="swagger-static")

    @app.get(f"{API_PREFIX}/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=f"{API_PREFIX}/openapi.json", title=f"{title}: API",
                                   swagger_js_url=f"{API_PREFIX}/docs/static/swagger-ui-bundle.js",
                                   swagger_css_url=f"{API_PREFIX}/docs/static/swagger-ui.css",
                                   swagger_favicon_url=f"{API_PREFIX}/docs/static/favicon-32x32.png")

    @app.exception_handler(RequestValidationError)
    async def on_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_problem(exc.errors())

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {401: "Niet geauthenticeerd", 403: "Geen toegang", 404: "Niet gevonden",
                  405: "Methode niet toegestaan", 409: "Conflict", 412: "Voorwaarde niet vervuld"}
        return problem(exc.status_code, titles.get(exc.status_code, "Fout"), str(exc.detail) if exc.detail else None,
                       headers=getattr(exc, "headers", None))

    @app.middleware("http")
    async def api_version(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        request.state.trace_id = trace_id_from(request.headers.get("traceparent", ""))
        response = await call_next(request)
        response.headers["API-Version"] = API_VERSION
        response.headers["X-Trace-Id"] = request.state.trace_id
        return response

    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes, overrides=body_limits)
    return app


def add_health(app: FastAPI, ready_checks: Callable[[], Awaitable[dict[str, bool]]]) -> None:
    """``/health``: the process runs. ``/ready``: its database and broker answer (503 otherwise)."""

    @app.get("/health", tags=["beheer"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["beheer"], response_model=None)
    async def ready() -> JSONResponse | dict[str, Any]:
        checks = await ready_checks()
        if all(checks.values()):
            return {"status": "ready", "checks": checks}
        return problem(503, "Niet gereed", "Een afhankelijkheid antwoordt niet.", checks=checks)


def serve(app: FastAPI, host: str, port: int) -> None:
    """Run a service's app (``python -m <service>``); uvicorn's access log stays off, structlog logs instead."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning")
