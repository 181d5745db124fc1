"""``python -m console``: the beheerconsole (HTTP only; it reads through the other services' APIs)."""

from console.api import create
from console.settings import ConsoleSettings
from servicekit.http import serve

if __name__ == "__main__":
    settings = ConsoleSettings()
    serve(create(settings), settings.http_host, settings.http_port)
