"""``python -m grants``: the grants service (command consumer, allocator, outbox relay, HTTP API)."""

from grants.api import create
from grants.bootstrap import GrantsSettings
from servicekit.http import serve

if __name__ == "__main__":
    settings = GrantsSettings()
    serve(create(settings), settings.http_host, settings.http_port)
