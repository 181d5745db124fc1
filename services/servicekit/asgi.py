"""The one skeleton of servicekit's pure ASGI middleware (body limit, token before body, HTTP metrics, logboek).

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``: these must see a request before its body is read and
a response's start before it is sent, and must not buffer either.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class HttpMiddleware:
    """Passes lifespan and websocket traffic straight on; an HTTP request goes to ``http``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError
