"""``python -m intake``: the intake service (HTTP API + outbox relay)."""

import uvicorn

from intake.api import create
from intake.bootstrap import IntakeSettings

if __name__ == "__main__":
    settings = IntakeSettings()
    uvicorn.run(create(settings), host="127.0.0.1", port=settings.http_port, log_level="warning")
