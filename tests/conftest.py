"""Shared fixtures: real infrastructure, an isolated namespace per test, service processes."""

from __future__ import annotations

import asyncio
import os
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from servicekit.settings import FERRETDB_POOL_SIZE, ServiceSettings
from tests.support.infra import Infra, discover
from tests.support.namespaces import sweep_leftovers, temporary_namespace
from tests.support.processes import ServiceProcess
from tests.support.tcp_proxy import CuttingProxy

# Every reuse of a finished task's kept dict in the engine's serialiser is checked against a fresh one (in this
# process and in the service processes the tests start, which inherit the environment).
os.environ.setdefault("IPSFLOW_ENGINE_CHECK_KEPT_TASKS", "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The folder a test lives in is its kind; a marker is added so `-m` selections work.
    for item in items:
        for kind in ("unit", "integration", "bpmn", "e2e", "browser", "fuzz"):
            if f"/tests/{kind}/" in str(item.path):
                item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    found = discover()
    if found.kind != "testcontainers":  # fresh containers hold nothing to sweep
        removed = sweep_leftovers(found)
        if removed:
            print(f"\n[tests] removed {len(removed)} namespaces older than a day left by killed runs", flush=True)
    yield found
    found.close()


@pytest.fixture
def namespace(infra: Infra) -> Iterator[str]:
    """A fresh prefix for exchanges, queues and databases (with its creation time in the name); removed
    afterwards, also when the test failed: fixture teardown runs whatever the test's outcome."""
    with temporary_namespace(infra, "t") as ns:
        yield ns


@pytest.fixture
def settings_for(infra: Infra, namespace: str) -> Callable[..., ServiceSettings]:
    def make(service: str, cls: type[ServiceSettings] = ServiceSettings, **overrides: Any) -> ServiceSettings:
        return cls(service_name=service, amqp_url=infra.amqp_url, mongo_url=infra.mongo_url, namespace=namespace,
                   retry_delays_ms=[200, 500], **{"mongo_pool_size": FERRETDB_POOL_SIZE, **overrides})

    return make


@pytest.fixture
def ferretdb_proxy(infra: Infra) -> Iterator[CuttingProxy]:
    """A TCP proxy in front of the test's FerretDB that cuts connections on demand (tests/support/tcp_proxy.py)."""
    address = urllib.parse.urlparse(infra.mongo_url)
    proxy = CuttingProxy("FerretDB", address.hostname or "127.0.0.1", address.port or 27017).start()
    yield proxy
    proxy.stop()


@pytest.fixture
async def mongo(infra: Infra) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongo_url, tz_aware=True, maxPoolSize=4)
    yield client
    await client.close()


class StartedListener(monitoring.CommandListener):
    """A command listener for tests that look only at the commands sent: ``started`` is theirs to define."""

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@asynccontextmanager
async def listened_client(infra: Infra, listener: monitoring.CommandListener
                          ) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    """A client of the test database (with the services' pool size) whose commands ``listener`` sees: for tests that
    count the statements a piece of code sends."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongo_url, tz_aware=True, maxPoolSize=FERRETDB_POOL_SIZE, event_listeners=[listener])
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def service(infra: Infra, namespace: str, tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    started: list[ServiceProcess] = []

    def make(package: str, **env: str) -> ServiceProcess:
        proc = ServiceProcess(package, infra, namespace, tmp_path, extra_env=env)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()


@pytest.fixture
async def driver(settings_for: Callable[..., ServiceSettings], request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """Plays the process engine towards one service (tests/support/engine_driver.py). A test module may set
    ``ENGINE_NOW`` (the time its commands carry) and ``Driver`` (a subclass with its own ``send``)."""
    from servicekit.broker import Broker
    from tests.support.engine_driver import CommandDriver

    broker = Broker(settings_for("test-driver"))
    await broker.connect()
    driver_class = getattr(request.module, "Driver", CommandDriver)
    command_driver = driver_class(broker, getattr(request.module, "ENGINE_NOW", None))
    await command_driver.start()
    yield command_driver
    await broker.close()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0, interval: float = 0.1,
                     what: str = "condition") -> None:
    """Wait until ``check`` holds; fails the test with ``what`` when it does not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
