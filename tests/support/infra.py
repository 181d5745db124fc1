"""Where the tests find RabbitMQ and the MongoDB-wire server.

Order (README.md): URLs from the environment, else testcontainers when a Docker engine answers, else the
local stack (deploy/local/stack.sh up, idempotent: starts what is not running).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ipsflow_cli.run import local_stack_addresses

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Infra:
    amqp_url: str
    mongo_url: str
    management_url: str
    kind: str  # "env", "testcontainers" or "local"
    _containers: list[Any] = field(default_factory=list)

    def restart_broker(self, down_seconds: float = 2.0) -> None:
        """Stop the broker for ``down_seconds`` and start it again (every connection drops)."""
        if self.kind == "testcontainers":
            container = self._containers[0].get_wrapped_container()
            container.stop()
            time.sleep(down_seconds)
            container.start()
            return
        # stack.sh knows which node answers on the port (its own, with its own node name and Erlang cookie, or a
        # reused system node) and calls rabbitmqctl for that one.
        ctl = ["bash", str(ROOT / "deploy" / "local" / "stack.sh"), "rabbitmqctl"]
        subprocess.run([*ctl, "-q", "stop_app"], check=True, capture_output=True)
        time.sleep(down_seconds)
        subprocess.run([*ctl, "-q", "start_app"], check=True, capture_output=True)

    def close(self) -> None:
        for c in self._containers:
            c.stop()


def _docker_engine_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def discover() -> Infra:
    amqp, mongo = os.environ.get("IPSFLOW_TEST_AMQP_URL"), os.environ.get("IPSFLOW_TEST_MONGO_URL")
    if amqp and mongo:
        # Unless named, the management API is the local stack's (moved with it): a fixed 15672 sent the namespace
        # clean-up of a bench on a moved stack to another broker, and its queues stayed behind.
        return Infra(amqp, mongo, os.environ.get("IPSFLOW_TEST_MANAGEMENT_URL", local_infra().management_url), "env")
    if _docker_engine_answers():
        from testcontainers.mongodb import MongoDbContainer
        from testcontainers.rabbitmq import RabbitMqContainer

        rabbit = RabbitMqContainer("rabbitmq:3.13-management").with_exposed_ports(5672, 15672)
        mongo_c = MongoDbContainer("mongo:7")
        rabbit.start()
        mongo_c.start()
        host = rabbit.get_container_host_ip()
        return Infra(f"amqp://guest:guest@{host}:{rabbit.get_exposed_port(5672)}/",
                     mongo_c.get_connection_url(),
                     f"http://guest:guest@{host}:{rabbit.get_exposed_port(15672)}", "testcontainers",
                     [rabbit, mongo_c])
    result = subprocess.run(["bash", str(ROOT / "deploy" / "local" / "stack.sh"), "up"], check=False)
    if result.returncode != 0:
        raise RuntimeError("the local stack did not start; run `deploy/local/stack.sh up` to see why")
    return local_infra()


def local_infra() -> Infra:
    """The local stack's addresses; the same variables move them as move deploy/local/stack.sh."""
    amqp, mongo, management = local_stack_addresses()
    return Infra(amqp, mongo, f"http://guest:guest@{management}", "local")
