"""``python -m notifications``: the notifications service (consumer + HTTP)."""

from notifications.api import create
from notifications.bootstrap import NotificationSettings
from servicekit.http import serve

if __name__ == "__main__":
    settings = NotificationSettings()
    serve(create(settings), settings.http_host, settings.http_port)
