"""``python -m notifications``: the notifications service (consumer + HTTP)."""

import sys

from notifications.api import create
from notifications.bootstrap import NotificationSettings
from notifications.letter import LettertypeOntbreekt
from servicekit.http import serve

if __name__ == "__main__":
    settings = NotificationSettings()
    try:
        app = create(settings)
    except LettertypeOntbreekt as exc:
        sys.exit(f"notifications: cannot start: {exc}")
    serve(app, settings.http_host, settings.http_port)
