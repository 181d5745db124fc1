"""FastAPI edges shared by the services: problem+json errors, body limit, offline API docs, health.

Errors follow RFC 9457. Validation problems are 400 and name every invalid field in ``invalidParams``
(NL API Design Rules), in the camelCase spelling the client sent; input values are never echoed back,
so a rejected BSN does not travel into logs or proxies.
"""

from __future__ import annotations

import re
import traceback
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import swagger_ui_bundle
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit import metrics, tracing
from servicekit.asgi import HttpMiddleware
from servicekit.logging import get_logger

PROBLEM = "application/problem+json"
API_VERSION = "1.0.0"
API_PREFIX = "/api/v1"
#: Methods whose requests carry a body: the caller is authenticated before a byte of it is read.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

log = get_logger(__name__)


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


class ApiVersionMiddleware(HttpMiddleware):
    """Every answer of the application carries ``API-Version`` and the request's ``X-Trace-Id``; the request runs
    in the caller's trace (or a new one), so the events it causes carry it (servicekit.tracing). An exception that
    escapes the application before it answered becomes the problem answer of :func:`internal_error`.

    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` (``@app.middleware("http")``, used until session
    14) runs the application in a task of its own and streams its answer through a memory channel, for every
    request."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        traceparent = Headers(scope=scope).get("traceparent")
        with tracing.continued(traceparent, f"HTTP {scope['method']}", kind="server") as trace:
            scope.setdefault("state", {})["trace_id"] = trace
            started = False

            async def send_marked(message: Message) -> None:
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                    headers = MutableHeaders(scope=message)
                    headers["API-Version"] = API_VERSION
                    headers["X-Trace-Id"] = trace
                await send(message)

            try:
                await self.app(scope, receive, send_marked)
            except Exception as exc:
                if started:
                    raise
                await internal_error(Request(scope), exc)(scope, receive, send_marked)


class BodyLimitMiddleware(HttpMiddleware):
    """Refuses a request body over ``max_bytes`` before the application reads it (400, field ``body``).

    ``overrides`` give other limits to routes whose path matches a regular expression (a document upload);
    the first match wins, every other route keeps ``max_bytes``.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, overrides: Sequence[tuple[str, int]] = ()) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes
        self.overrides = [(re.compile(pattern), limit) for pattern, limit in overrides]

    def limit_for(self, path: str) -> int:
        return next((limit for pattern, limit in self.overrides if pattern.fullmatch(path)), self.max_bytes)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
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
        if _is_json(scope) and not (_declared_charset_ok(scope) and _is_utf8_json(bytes(body))):
            await _not_utf8(scope, receive, send)
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


def _is_json(scope: Scope) -> bool:
    """Whether FastAPI will read this body as JSON: no Content-Type, or application/json or ``+json``."""
    content_type = dict(scope.get("headers") or []).get(b"content-type", b"").decode("latin-1").lower()
    media_type = content_type.split(";")[0].strip()
    return not media_type or media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json"))


def _is_utf8_json(body: bytes) -> bool:
    """RFC 8259 8.1: JSON between systems is UTF-8. ``json.loads`` would also guess UTF-16 and UTF-32, and a
    NUL byte can never stand in a UTF-8 JSON text (UTF-16 without a BOM is valid UTF-8 byte for byte)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return "\x00" not in text


def _declared_charset_ok(scope: Scope) -> bool:
    content_type = dict(scope.get("headers") or []).get(b"content-type", b"").decode("latin-1").lower()
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            return False
    return True


async def _not_utf8(scope: Scope, receive: Receive, send: Send) -> None:
    response = problem(400, "Ongeldige invoer", "Een JSON-body moet in UTF-8 zijn; er is niets opgeslagen.",
                       type_="https://ipsflow.nl/problems/ongeldige-invoer",
                       invalid_params=[{"name": "body", "code": "encoding", "reason": "is geen UTF-8 (RFC 8259)"}])
    await response(scope, receive, send)


def _has_body(scope: Scope) -> bool:
    """A method that carries a body, or any request that announces one (a GET with a body is still a body)."""
    if scope.get("method") in BODY_METHODS:
        return True
    headers = dict(scope.get("headers") or [])
    return b"transfer-encoding" in headers or headers.get(b"content-length", b"0").strip() not in (b"", b"0")


class AuthBeforeBodyMiddleware(HttpMiddleware):
    """Authenticates a request with a body (POST, PUT, PATCH, DELETE, or any that announces a body, under
    ``/api/v1``) before reading any of it.

    Without a valid bearer token the answer is 401 problem+json and the body is never read: uvicorn holds at most
    its flow-control buffer (64 KB) of it, instead of the whole upload that BodyLimitMiddleware would otherwise
    buffer before the route authenticates (40 unauthenticated 10 MB uploads took intake from 100 to 547 MB). The
    check is ``servicekit.auth.current_principal``, the same as the routes' own; it leaves the verified principal
    on ``request.state``, where the route's dependency takes it (one verification per request). A route that
    does not depend on it (a public one) is let through; a path that matches no route needs a token too.
    """

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        self._public: dict[int, bool] = {}

    def _is_public(self, scope: Scope) -> bool:
        router = getattr(scope.get("app"), "router", None)
        for route in getattr(router, "routes", ()):
            if isinstance(route, APIRoute) and route.matches(scope)[0] == Match.FULL:
                if id(route) not in self._public:
                    self._public[id(route)] = not _authenticated(route)
                return self._public[id(route)]
        return False

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _has_body(scope) or not scope.get("path", "").startswith(API_PREFIX) or self._is_public(scope):
            await self.app(scope, receive, send)
            return
        from servicekit.auth import current_principal  # auth imports nothing of http; keep it that way

        try:
            # In a thread: a JWKS key source may fetch the provider's key set.
            await run_in_threadpool(current_principal, Request(scope))
        except StarletteHTTPException as exc:
            trace_id = trace_id_from(dict(scope.get("headers") or []).get(b"traceparent", b"").decode("latin-1"))
            response = problem(exc.status_code, _TITLES.get(exc.status_code, "Fout"),
                               str(exc.detail) if exc.detail else None,
                               headers={**(exc.headers or {}), "X-Trace-Id": trace_id, "API-Version": API_VERSION})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


_TITLES = {400: "Ongeldige invoer", 401: "Niet geauthenticeerd", 403: "Geen toegang", 404: "Niet gevonden",
           405: "Methode niet toegestaan", 409: "Conflict", 412: "Voorwaarde niet vervuld", 503: "Niet beschikbaar"}

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

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Last resort (an error outside the middleware below): the same answer, never uvicorn's text/plain.
        return internal_error(request, exc)

    app.add_middleware(ApiVersionMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes, overrides=body_limits)
    app.add_middleware(AuthBeforeBodyMiddleware)  # added last, so it runs first: before any body is read
    metrics.install(app)  # /metrics, and the latency of every request (the refused ones above too)
    app.openapi = lambda: _openapi_with_problems(app)  # type: ignore[method-assign]
    return app


def internal_error(request: Request, exc: Exception) -> JSONResponse:
    """An unexpected error: logged with the trace id; the caller gets only that id (nothing internal)."""
    trace_id = request_trace_id(request)
    # Where it happened, not the message: an exception's text can quote the input (a BSN, a health detail).
    frames = [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in traceback.extract_tb(exc.__traceback__)[-8:]]
    log.error("http.unexpected_error", trace_id=trace_id, method=request.method, path=request.url.path,
              error=type(exc).__name__, frames=frames)
    return problem(500, "Interne fout", "Er ging iets mis aan onze kant; er is mogelijk niets opgeslagen. "
                   "Noem het traceId als u contact opneemt.", type_="https://ipsflow.nl/problems/interne-fout",
                   traceId=trace_id, headers={"X-Trace-Id": trace_id, "API-Version": API_VERSION})


#: problem+json (RFC 9457) as the OpenAPI documents it for every error answer.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object", "title": "Problem", "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "traceId": {"type": "string"},
        "invalidParams": {"type": "array", "items": {
            "type": "object", "required": ["name", "reason"],
            "properties": {"name": {"type": "string"}, "code": {"type": "string"}, "reason": {"type": "string"}}}},
    },
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_DESCRIPTIONS = {400: "Ongeldige invoer", 401: "Geen of ongeldig token", 403: "Geen toegang voor uw organisatie of rol",
                 404: "Niet gevonden", 409: "Conflict met de huidige toestand", 412: "If-Match verouderd",
                 422: "Idempotency-Key hergebruikt", 500: "Interne fout (met traceId)", 503: "Niet beschikbaar"}


def problem_responses(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: these error codes, problem+json. ``descriptions``: ``s409="..."``."""
    return {code: {"description": descriptions.get(f"s{code}", _DESCRIPTIONS.get(code, "Fout")),
                   "content": {PROBLEM: {"schema": _PROBLEM_REF}}} for code in codes}


def _authenticated(route: APIRoute) -> bool:
    from servicekit.auth import current_principal

    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if dep.call is current_principal:
            return True
        stack.extend(dep.dependencies)
    return False


def _openapi_with_problems(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus what every route can answer: 400 for input, 401/403 behind a token, 404 for a
    path id, 500 with a trace id; each as problem+json. FastAPI's 422 validation error is gone (we answer 400)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components.setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer",
                                                              "bearerFormat": "JWT"}
    for name in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(name, None)
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        authenticated = _authenticated(route)
        takes_input = bool(route.dependant.query_params or route.dependant.path_params
                           or route.dependant.header_params or route.dependant.body_params
                           or (route.openapi_extra or {}).get("requestBody"))
        for method in route.methods or ():
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            if responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {}) == {
                    "$ref": "#/components/schemas/HTTPValidationError"}:
                del responses["422"]
            codes = [500]
            if takes_input or (route.path.startswith(API_PREFIX) and method in BODY_METHODS):
                codes.append(400)
            if authenticated:
                codes += [401, 403]
                operation["security"] = [{"bearer": []}]
            if route.dependant.path_params:
                codes.append(404)
            for code in codes:
                responses.setdefault(str(code), {"description": _DESCRIPTIONS[code]})
            for code, response in responses.items():
                if code[0] in "45":
                    response.setdefault("description", _DESCRIPTIONS.get(int(code), "Fout"))
                    content = response.setdefault("content", {})
                    content.pop("application/json", None)
                    content.setdefault(PROBLEM, {"schema": _PROBLEM_REF})
    app.openapi_schema = schema
    return schema


DEPENDENCY_NAMES = {"rabbitmq": "RabbitMQ", "mongodb": "MongoDB"}


class Ready(BaseModel):
    status: str = Field(description="ready")
    checks: dict[str, bool] = Field(description="Per afhankelijkheid: antwoordt die?")


def add_health(app: FastAPI, ready_checks: Callable[[], Awaitable[dict[str, bool]]]) -> None:
    """``/health``: the process runs. ``/ready``: its database and broker answer (503 otherwise)."""

    @app.get("/health", tags=["beheer"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["beheer"], response_model=Ready,
             responses={503: {"description": "Database of broker antwoordt niet"}})
    async def ready() -> Any:
        checks = await ready_checks()
        if all(checks.values()):
            return {"status": "ready", "checks": checks}
        missing = [DEPENDENCY_NAMES.get(name, name) for name, ok in checks.items() if not ok]
        return problem(503, "Niet gereed", f"Geen verbinding met {' en '.join(missing)}.", checks=checks,
                       missing=[name for name, ok in checks.items() if not ok])


def serve(app: FastAPI, host: str, port: int) -> None:
    """Run a service's app (``python -m <service>``); uvicorn's access log stays off, structlog logs instead."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning")
