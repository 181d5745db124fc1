"""``python -m payments``: the payments service (command consumer, outbox relay, HTTP API)."""

from payments.api import create
from payments.bootstrap import PaymentsSettings
from servicekit.http import serve

if __name__ == "__main__":
    settings = PaymentsSettings()
    serve(create(settings), settings.http_host, settings.http_port)
