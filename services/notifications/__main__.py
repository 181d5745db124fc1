"""``python -m notifications``: the notifications service (consumer + HTTP)."""

import uvicorn

from notifications.api import create
from notifications.bootstrap import NotificationSettings

if __name__ == "__main__":
    settings = NotificationSettings()
    uvicorn.run(create(settings), host=settings.http_host, port=settings.http_port, log_level="warning")
