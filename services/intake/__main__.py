"""``python -m intake``: the intake service (HTTP API + outbox relay)."""

import uvicorn

from intake.api import create
from intake.bootstrap import IntakeSettings

if __name__ == "__main__":
    settings = IntakeSettings()
    uvicorn.run(create(settings), host=settings.http_host, port=settings.http_port, log_level="warning")
