"""Hard edges of every API (servicekit.http): authentication before the body, UTF-8 JSON, the catch-all 500,
and OpenAPI documents that say what each route answers."""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from pydantic import BaseModel

from servicekit.auth import Principal, PrincipalDep, TokenVerifier, mint_token
from servicekit.http import PROBLEM, create_app

BODY_LIMIT = 12 * 1024 * 1024
UPLOAD = "/api/v1/stukken"


@pytest.fixture(autouse=True)
def development_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # The app has no lifespan here, so tokens are checked against this process's configuration: the dev key.
    monkeypatch.setenv("IPSFLOW_ENVIRONMENT", "development")


class _Body(BaseModel):
    naam: str


def _app() -> Any:
    app = create_app("t", "t", body_limits=[(UPLOAD, BODY_LIMIT)])

    @app.post(UPLOAD)
    async def upload(request: Request, principal: PrincipalDep) -> dict[str, Any]:
        return {"bytes": len(await request.body()), "sub": principal.subject}

    @app.post("/api/v1/namen")
    async def naam(body: _Body, principal: PrincipalDep) -> dict[str, str]:
        return {"naam": body.naam}

    @app.post("/api/v1/openbaar")
    async def openbaar(body: _Body) -> dict[str, str]:
        return {"naam": body.naam}

    @app.get("/api/v1/stuk")
    async def stuk(principal: PrincipalDep) -> dict[str, str]:
        raise RuntimeError("interne details: bsn 111222333 en /etc/geheim")

    return app


def _token() -> str:
    return mint_token("tester", "ggz", "12345678", ["aanvrager"])


async def _send(app: Any, headers: list[tuple[bytes, bytes]], size: int, chunk: int = 64 * 1024,
                method: str = "POST") -> tuple[int, dict[bytes, bytes], bytes, int]:
    """One request with a body of ``size`` bytes straight to the ASGI app; returns status, headers, body and the
    bytes the app asked for (what a server would have had to buffer)."""
    read = 0
    sent_chunks = 0
    total_chunks = -(-size // chunk)
    status, response_headers, body = 0, {}, b""

    async def receive() -> dict[str, Any]:
        nonlocal read, sent_chunks
        if sent_chunks >= total_chunks:
            await asyncio.sleep(3600)  # the client has nothing more; only a disconnect would come
        sent_chunks += 1
        part = min(chunk, size - (sent_chunks - 1) * chunk)
        read += part
        return {"type": "http.request", "body": b"\0" * part, "more_body": sent_chunks < total_chunks}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, response_headers, body
        if message["type"] == "http.response.start":
            status = message["status"]
            response_headers = dict(message["headers"])
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": UPLOAD, "raw_path": UPLOAD.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"test"), (b"content-type", b"application/pdf"),
                         (b"content-length", str(size).encode()), *headers],
             "client": ("127.0.0.1", 1), "server": ("test", 80), "state": {}}
    await asyncio.wait_for(app(scope, receive, send), timeout=30)
    return status, response_headers, body, read


async def test_an_unauthenticated_upload_is_refused_before_its_body_is_read() -> None:
    """Regression: BodyLimitMiddleware read (and buffered) all 10 MB before the route found no token."""
    app = _app()
    for headers in ([], [(b"authorization", b"Bearer niet-een-token")], [(b"authorization", b"Basic Zm9vOmJhcg==")]):
        status, response_headers, body, read = await _send(app, headers, 10 * 1024 * 1024)
        assert status == 401
        assert response_headers[b"content-type"].decode().startswith(PROBLEM)
        assert response_headers[b"x-trace-id"]
        assert json.loads(body)["status"] == 401
        assert read == 0, f"{read} bytes of an unauthenticated body were read"


async def test_a_body_on_another_method_is_not_read_without_a_token_either() -> None:
    """A GET (or any method) that announces a body on the upload path would otherwise be buffered up to the
    upload limit before its 405."""
    status, _headers, _body, read = await _send(_app(), [], 10 * 1024 * 1024, method="GET")
    assert status == 401
    assert read == 0


async def test_an_authenticated_upload_is_read_as_before() -> None:
    status, _headers, body, read = await _send(_app(), [(b"authorization", f"Bearer {_token()}".encode())],
                                               3 * 1024 * 1024)
    assert status == 200, body
    assert json.loads(body) == {"bytes": 3 * 1024 * 1024, "sub": "tester"}
    assert read == 3 * 1024 * 1024


def test_each_request_verifies_its_token_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: a request with a body had its signature checked twice, by the token-before-body middleware and
    again by the route's ``current_principal``; the middleware now hands its principal to the route."""
    calls: list[str] = []
    real_verify = TokenVerifier.verify

    def counted(self: TokenVerifier, token: str) -> Principal:
        calls.append(token)
        return real_verify(self, token)

    monkeypatch.setattr(TokenVerifier, "verify", counted)
    app = _app()

    @app.get("/api/v1/wie")
    async def wie(principal: PrincipalDep) -> dict[str, str]:
        return {"sub": principal.subject}

    client = TestClient(app)
    token = _token()
    for method, path, body in (("POST", "/api/v1/namen", {"naam": "x"}), ("GET", "/api/v1/wie", None)):
        calls.clear()
        response = client.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        assert calls == [token], f"{method} {path}: {len(calls)} verifications"
    # a refused token is refused once, in our words, before the body (the middleware's answer)
    calls.clear()
    refused = client.post("/api/v1/namen", json={"naam": "x"}, headers={"Authorization": "Bearer onzin"})
    assert refused.status_code == 401 and refused.json()["detail"] == "Token is onleesbaar."
    assert calls == ["onzin"]
    # the principal is not carried over from one request to the next: each new request checks its own token
    calls.clear()
    assert client.get("/api/v1/wie", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/api/v1/wie", headers={"Authorization": "Bearer onzin"}).status_code == 401
    assert calls == [token, "onzin"]


def test_a_public_body_route_needs_no_token_and_a_token_route_does() -> None:
    client = TestClient(_app())
    assert client.post("/api/v1/openbaar", json={"naam": "x"}).json() == {"naam": "x"}
    assert client.post("/api/v1/namen", json={"naam": "x"}).status_code == 401
    assert client.post("/api/v1/bestaat-niet", json={"naam": "x"}).status_code == 401  # no route: no body either


@pytest.mark.parametrize(("content", "content_type"), [
    ('{"naam": "Zoë"}'.encode("utf-16"), "application/json"),  # with BOM
    ('{"naam": "Zoë"}'.encode("utf-16-le"), "application/json"),  # without: valid UTF-8 byte for byte (NULs)
    ('{"naam": "Zoë"}'.encode("utf-32"), "application/json"),
    ('{"naam": "Zoë"}'.encode("latin-1"), "application/json"),
    (b'{"naam": "Zoe"}', "application/json; charset=utf-16"),
    ('{"naam": "Zoë"}'.encode("utf-16"), ""),
])
def test_a_json_body_must_be_utf8(content: bytes, content_type: str) -> None:
    """Regression: json.loads guessed UTF-16/32 and accepted them; Latin-1 gave an English 400 without a field."""
    client = TestClient(_app())
    headers = {"Authorization": f"Bearer {_token()}"}
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post("/api/v1/namen", content=content, headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert [p["name"] for p in response.json()["invalidParams"]] == ["body"]
    ok = client.post("/api/v1/namen", content='\ufeff{"naam": "Zoë"}'.encode(), headers={
        **headers, "Content-Type": "application/json; charset=UTF-8"})
    assert ok.status_code == 200 and ok.json() == {"naam": "Zoë"}


def test_an_unexpected_error_is_a_problem_500_with_the_trace_id_and_nothing_internal() -> None:
    """Regression: uvicorn answered 'Internal Server Error' as text/plain, without a trace id."""
    client = TestClient(_app(), raise_server_exceptions=False)
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    response = client.get("/api/v1/stuk", headers={"Authorization": f"Bearer {_token()}",
                                                   "traceparent": traceparent})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == 500
    assert body["traceId"] == response.headers["X-Trace-Id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    for internal in ("111222333", "geheim", "RuntimeError", "Traceback"):
        assert internal not in response.text


SERVICES = ("intake", "grants", "payments", "notifications", "process_engine")
#: Every route of these two declares what it answers (a model, not an untyped dict).
TYPED = ("payments", "process_engine")


@pytest.fixture(scope="module")
def openapi_documents() -> Iterator[dict[str, dict[str, Any]]]:
    with pytest.MonkeyPatch.context() as env:  # outside development a service refuses to be built without its keys
        env.setenv("IPSFLOW_ENVIRONMENT", "development")
        yield {name: importlib.import_module(f"{name}.api").create().openapi() for name in SERVICES}


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


@pytest.mark.parametrize("service", SERVICES)
def test_openapi_documents_every_error_as_problem_json(openapi_documents: dict[str, Any], service: str) -> None:
    """Regression: no route documented 401, errors were documented as FastAPI's 422 (never answered), and
    payments and the engine returned untyped dicts (an empty schema)."""
    document = openapi_documents[service]
    problem_schema = document["components"]["schemas"]["Problem"]
    assert set(problem_schema["required"]) == {"type", "title", "status"}
    checked = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{service} {method.upper()} {path}"
            responses = operation["responses"]
            authenticated = bool(operation.get("security"))
            if path.startswith("/api/v1"):
                assert authenticated, f"{where}: no bearer security documented"
                assert {"401", "403"} <= set(responses), f"{where}: 401/403 not documented"
                takes_input = bool(operation.get("parameters") or operation.get("requestBody"))
                if takes_input:
                    assert "400" in responses, f"{where}: 400 not documented"
                if any(p["in"] == "path" for p in operation.get("parameters", [])):
                    assert "404" in responses, f"{where}: 404 not documented"
            assert "500" in responses, f"{where}: 500 not documented"
            for code, response in responses.items():
                if code[0] in "45":
                    assert list(response["content"]) == [PROBLEM], f"{where} {code}: not problem+json"
                    schema = response["content"][PROBLEM]["schema"]
                    assert _resolve(document, schema) == problem_schema, f"{where} {code}"
            if "422" in responses:  # only where the route itself answers it (Idempotency-Key reused)
                assert "HTTPValidationError" not in json.dumps(responses["422"]), where
            if service in TYPED:
                success = next(responses[c] for c in sorted(responses) if c.startswith("2"))
                [content] = success["content"].values()
                schema = _resolve(document, content.get("schema") or {})
                assert schema and (schema.get("properties") or schema.get("items") or schema.get("type")), (
                    f"{where}: no response model")
            checked += 1
    assert checked >= 5
