"""Settings shared by every service, read from the environment (prefix ``IPSFLOW_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The Mongo pool per process on the local FerretDB (IPSFLOW_MONGO_POOL_SIZE in the local stack's environment).
FERRETDB_POOL_SIZE = 8


class ServiceSettings(BaseSettings):
    """Connection and behaviour settings common to all services.

    ``namespace`` prefixes every exchange and queue name so that test runs (or two tenants on one broker)
    cannot see each other's messages; production leaves it empty.
    """

    model_config = SettingsConfigDict(env_prefix="IPSFLOW_", extra="ignore")

    service_name: str = "ipsflow"
    # Where this process runs. Production is the default so that a forgotten setting fails closed: development
    # keys, an adjustable clock and other conveniences must be asked for explicitly (make run and the tests set
    # IPSFLOW_ENVIRONMENT=development; a training environment sets test).
    environment: Literal["development", "test", "production"] = "production"
    #: The rehearsal clock (servicekit/clock.py): functional admins may move this service's "now" to rehearse
    #: deadlines in a test or training environment. Refused in production: legal deadlines run on real time.
    adjustable_clock: bool = False
    #: How often a process re-reads the stored clock setting (another process of the service may have taken it).
    clock_refresh_seconds: float = Field(default=1.0, gt=0)
    #: One AMQP URL, or the nodes of a RabbitMQ cluster separated by commas (each reconnection takes the next).
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    mongo_url: str = "mongodb://127.0.0.1:27017/"
    #: How long a starting process waits for RabbitMQ and MongoDB to answer before it exits with an error naming
    #: the one that did not (IPSFLOW_STARTUP_TIMEOUT_SECONDS).
    startup_timeout_seconds: float = Field(default=30.0, gt=0)
    database: str = ""
    # Loopback by default so a developer machine exposes nothing; containers set 0.0.0.0 to be reachable.
    http_host: str = "127.0.0.1"
    namespace: str = ""
    # None: the driver's own default (PyMongo: 100), which is what MongoDB (compose) is meant to get. FerretDB v1
    # (SQLite) deadlocks when more than ~100 operations wait for its connection pool at once (seen here: every
    # connection held, 500 operations queued, none running), so the local stack's environment sets a small share
    # per service (FERRETDB_POOL_SIZE: ipsflow run, tests/support/processes.py, tests/conftest.py).
    mongo_pool_size: int | None = Field(default=None, ge=1, le=1000)
    # A MongoDB replica set (deploy/compose.yml, deploy/k8s): its name, the write concern ("majority", or a number
    # of members) and retryable writes. None leaves the driver's default (and whatever the URL says); the local
    # FerretDB is a single server without a replica set. docs/databases.md says what the code may rely on.
    mongo_replica_set: str | None = Field(default=None, min_length=1, max_length=100)
    mongo_write_concern: str | None = Field(default=None, pattern=r"^(majority|[0-9]{1,2})$")
    mongo_retry_writes: bool | None = None
    prefetch: int = Field(default=32, ge=1, le=1000)
    # At least one tier: the consumer re-publishes a failed message to a wait queue before it parks it.
    retry_delays_ms: list[int] = Field(default_factory=lambda: [1_000, 5_000, 30_000], min_length=1)
    max_attempts: int = Field(default=4, ge=1)
    relay_poll_seconds: float = Field(default=5.0, gt=0)
    #: How long the relay waits before it clears published outbox entries itself: a write of the document within
    #: that time takes them out anyway (servicekit.relay, issue 14.3). 0: at once, as before.
    relay_clear_after_seconds: float = Field(default=2.0, ge=0, le=60)
    log_level: str = "INFO"
    #: OpenTelemetry spans (servicekit.otel): none (default: the trace context still travels, no SDK is loaded),
    #: console (spans on stderr) or otlp (OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT).
    otel_exporter: Literal["none", "console", "otlp"] = "none"

    def database_name(self) -> str:
        """The service's own database: each service owns one and never reads another's."""
        return self.database or f"{self.namespace}ipsflow_{self.service_name}".replace(".", "_")
