"""The notifications API is behind a bearer token like every other API; only beheer reads dossiers."""

from __future__ import annotations

import httpx

from tests.support.ips import ADMIN, ggz


def test_dossiers_need_a_token_and_the_admin_role(service):
    notifications = service("notifications").start()
    url = f"{notifications.url}/api/v1/dossiers/onbekend"
    assert httpx.get(url, timeout=10).status_code == 401
    assert httpx.get(url, headers=ggz(), timeout=10).status_code == 403
    missing = httpx.get(url, headers=ADMIN, timeout=10)
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
