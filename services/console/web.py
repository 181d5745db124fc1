"""What every page of the console shares: templates, the session dependency, forms with CSRF, refusals."""

from __future__ import annotations

import hmac
import json
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from console.bootstrap import Console, Formulieren, Session

HERE = Path(__file__).resolve().parent
#: The session cookie: a random id; the token stays in the console's database.
COOKIE = "ipsflow_console"
STATUSSEN = {"running": "loopt", "completed": "afgerond", "cancelled": "geannuleerd"}



def leesbaar(waarde: Any, als_json: bool = False) -> str:
    """A value as a person reads it on a page: text as it is (``als_json``: in quotes, where "0957" and 957 differ),
    anything else as compact JSON, its characters (« », accents) as they are. Jinja's ``tojson`` is for scripts and
    writes ``\u00ab``; the page escapes this text as any other."""
    if isinstance(waarde, str) and not als_json:
        return waarde
    return json.dumps(waarde, ensure_ascii=False, separators=(", ", ": "), default=str)


templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["STATUSSEN"] = STATUSSEN
templates.env.filters["leesbaar"] = leesbaar
templates.env.globals["eenmalig"] = Formulieren.nieuw


class NotSignedIn(Exception):
    pass


class Refused(Exception):
    """A request the console refuses, with the reason shown on the error page; ``verder`` is a (link, text) to where
    the user goes on, shown next to the usual links."""

    def __init__(self, status: int, reden: str, verder: tuple[str, str] | None = None) -> None:
        super().__init__(reden)
        self.status = status
        self.reden = reden
        self.verder = verder


def get_console(request: Request) -> Console:
    return request.app.state.console  # type: ignore[no-any-return]


ConsoleDep = Annotated[Console, Depends(get_console)]


async def current_session(request: Request, console: ConsoleDep) -> Session:
    session_id = request.cookies.get(COOKIE)
    session = await console.sessions.get(session_id) if session_id else None
    if session is None:
        raise NotSignedIn()
    return session


SessionDep = Annotated[Session, Depends(current_session)]


async def form_of(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (the console's forms send nothing else)."""
    body = await request.body()
    if body and not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise Refused(415, "Dit formulier is niet als formulier verstuurd.")
    return {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


def check_csrf(form: dict[str, str], expected: str) -> None:
    if not expected or not hmac.compare_digest(form.get("csrf", "").encode(), expected.encode()):
        raise Refused(403, "Het formulier is verlopen of niet van deze console (CSRF-controle). Laad de pagina "
                           "opnieuw en probeer het nog eens.")


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status)
