"""Settings of the console (prefix ``IPSFLOW_``): where the services and the broker's management API answer."""

from __future__ import annotations

from pydantic import Field, SecretStr

from servicekit.settings import ServiceSettings

#: The console's roles (README, "Rollen"): a beheer token without one of these does not get in.
VIEWER = "viewer"
ROLLEN = ("viewer", "functioneel-beheerder", "procesbeheerder")


class ConsoleSettings(ServiceSettings):
    service_name: str = "console"
    http_port: int = 8006
    # The services the console reads through (their own HTTP APIs; it never opens their databases).
    console_engine_url: str = "http://127.0.0.1:8005"
    console_intake_url: str = "http://127.0.0.1:8001"
    # A case page shows the case's beschikkingen (grants) and letters (notifications) from their own APIs.
    console_grants_url: str = "http://127.0.0.1:8002"
    console_notifications_url: str = "http://127.0.0.1:8004"
    # RabbitMQ's management API (queue depths, dead letters); the credentials stay on the server.
    rabbitmq_management_url: str = "http://127.0.0.1:15672"
    rabbitmq_management_user: str = "guest"
    rabbitmq_management_password: SecretStr = SecretStr("guest")
    #: How long a sign-in lasts (the session is also ended when its token expires).
    console_session_minutes: int = Field(default=60, ge=5, le=12 * 60)
    #: How often the overview refreshes its figures in the browser.
    console_refresh_seconds: int = Field(default=10, ge=2, le=600)
    console_page_size: int = Field(default=50, ge=10, le=500)
    #: Replaying parked messages in bulk: at most this many a second, and this many per action.
    console_replay_per_second: float = Field(default=20.0, gt=0, le=1000)
    console_replay_max: int = Field(default=10_000, ge=1, le=1_000_000)
    # OpenID Connect (production sign-in, console/oidc.py): the provider's discovery document, this client, and the
    # URL the provider sends the user back to (https://<console>/oidc/terug). Unset: only development sign-in.
    console_oidc_discovery_url: str = ""
    console_oidc_client_id: str = ""
    console_oidc_client_secret: SecretStr = SecretStr("")
    console_oidc_redirect_url: str = ""
    console_oidc_scope: str = "openid"
