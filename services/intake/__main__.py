"""``python -m intake``: the intake service (HTTP API + outbox relay)."""

from intake.api import create
from intake.bootstrap import IntakeSettings
from servicekit.http import serve

if __name__ == "__main__":
    settings = IntakeSettings()
    serve(create(settings), settings.http_host, settings.http_port)
