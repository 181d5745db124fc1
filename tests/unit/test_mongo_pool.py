"""Item 7 of issue 14: MongoDB gets the driver's pool, the local FerretDB the small one its environment sets."""

from __future__ import annotations

import pytest

from ipsflow_cli.run import local_stack_urls
from servicekit.settings import FERRETDB_POOL_SIZE, ServiceSettings
from servicekit.store import make_client


async def test_the_code_default_is_the_drivers_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IPSFLOW_MONGO_POOL_SIZE", raising=False)
    settings = ServiceSettings(service_name="pool")
    assert settings.mongo_pool_size is None
    client = make_client(settings)
    try:
        assert client.options.pool_options.max_pool_size == 100  # PyMongo's default, what compose's MongoDB gets
    finally:
        await client.close()


async def test_the_local_stacks_environment_sets_ferretdbs_small_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    env = local_stack_urls()
    assert env["IPSFLOW_MONGO_POOL_SIZE"] == str(FERRETDB_POOL_SIZE) == "8"
    monkeypatch.setenv("IPSFLOW_MONGO_POOL_SIZE", env["IPSFLOW_MONGO_POOL_SIZE"])
    client = make_client(ServiceSettings(service_name="pool"))
    try:
        assert client.options.pool_options.max_pool_size == FERRETDB_POOL_SIZE
    finally:
        await client.close()

