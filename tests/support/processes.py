"""Run ipsflow services as real processes (``python -m <service>``) for integration and e2e tests."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from servicekit.settings import FERRETDB_POOL_SIZE
from tests.support.infra import ROOT, Infra

#: The fault a crash test injects (tests/support/faults.py); the services never read it.
FAULT_ENV = "IPSFLOW_TEST_FAULT"


#: Ports ``free_port`` handed out in this process: the kernel may give a port that was just closed again, and
#: two services started one after the other then got the same one (seen in bench_ips: notifications could not
#: bind, and intake answered its readiness probe).
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on now and that this process has not handed out before."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


@dataclass
class ServiceProcess:
    package: str
    infra: Infra
    namespace: str
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True, **env: str) -> ServiceProcess:
        full_env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT / 'services'}{os.pathsep}{ROOT}",
            "IPSFLOW_AMQP_URL": self.infra.amqp_url,
            "IPSFLOW_MONGO_URL": self.infra.mongo_url,
            "IPSFLOW_MONGO_POOL_SIZE": str(FERRETDB_POOL_SIZE),  # the local FerretDB's share per process
            "IPSFLOW_NAMESPACE": self.namespace,
            # The broker's management API (the console's queue pages): the one of the broker the test uses, also
            # when the stack was moved; credentials stay the settings' own.
            "IPSFLOW_RABBITMQ_MANAGEMENT_URL": re.sub(r"//[^@/]*@", "//", self.infra.management_url),
            "IPSFLOW_HTTP_PORT": str(self.port),
            "IPSFLOW_RETRY_DELAYS_MS": "[200, 500]",
            # Tests trust the development key pair (tests/support/tokens.py); a test of the production refusal
            # overrides this (the default is production, which refuses to start without a configured key).
            "IPSFLOW_ENVIRONMENT": "development",
            **self.extra_env,
            **env,
        }
        log = (self.log_dir / f"{self.package}-{self.port}.log").open("ab")
        # A crash test's fault is installed from outside the service (tests/support/faults.py).
        entry = ["tests.support.faults", self.package] if full_env.get(FAULT_ENV) else [self.package]
        self.proc = subprocess.Popen([sys.executable, "-m", *entry], env=full_env,
                                     stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.package} exited with {self.proc.returncode}; see {self.log_dir}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.package} not ready after {timeout}s; see {self.log_dir}")

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no acks, whatever was in flight is lost by the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
