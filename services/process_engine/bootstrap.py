"""Composition root of the process engine."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from process_engine.engine import Engine
from process_engine.repository import DefinitionRepository, InstanceRepository
from servicekit.bootstrap import Service, compose
from servicekit.broker import EVENTS, Binding
from servicekit.clock import Clock
from servicekit.settings import ServiceSettings

QUEUE = "process_engine"
ADMIN_COMMANDS_HEADING = "\n## Beheeropdrachten"
REPO_ROOT = Path(__file__).resolve().parents[2]


class EngineSettings(ServiceSettings):
    service_name: str = "process_engine"
    http_port: int = 8005
    timer_poll_seconds: float = Field(default=0.25, gt=0)
    timer_lease_seconds: float = Field(default=30.0, gt=0)
    #: How often the database is asked for due timers (timers this worker set are fired from memory).
    timer_scan_seconds: float = Field(default=5.0, gt=0)
    #: The outbox relay's safety scan when idle (servicekit: 5 s). Every engine write that puts commands in an
    #: outbox wakes the relay for that case, and the relay scans at start for what a crash left; the idle scan
    #: filters on has_outbox, which FerretDB v1 answers by decoding every instance, closed ones included (issue 14).
    relay_poll_seconds: float = Field(default=300.0, gt=0)
    #: BPMN/DMN files deployed at start-up (a directory); empty: deploy nothing.
    bpmn_dir: str = str(REPO_ROOT / "bpmn")
    #: The message catalogue (Markdown table with message types in backticks); empty: no catalogue check.
    catalogue_file: str = str(REPO_ROOT / "bpmn" / "README.md")
    # IPSFLOW_ADJUSTABLE_CLOCK (ServiceSettings.adjustable_clock) lets functional admins move the clock of every
    # service from here (PUT /api/v1/beheer/klok, servicekit/clock.py) in a test or training environment.


def load_catalogue(path: str) -> set[str] | None:
    """Message types listed in the catalogue: every `ips.….vN` in backticks."""
    file = Path(path) if path else None
    if file is None or not file.is_file():
        return None
    # Admin commands (the rehearsal clock) are listed after ADMIN_COMMANDS_HEADING: never in a diagram, so a
    # process owner cannot deploy a service task that moves every service's clock.
    text = file.read_text().split(ADMIN_COMMANDS_HEADING)[0]
    return set(re.findall(r"`(ips\.[a-z0-9_.-]+\.v[0-9]+)`", text))


def definition_files(directory: str) -> dict[str, bytes]:
    folder = Path(directory) if directory else None
    if folder is None or not folder.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".bpmn", ".dmn")}


@dataclass
class ProcessEngine(Service[EngineSettings]):
    engine: Engine
    clock: Clock


def bootstrap(settings: EngineSettings | None = None) -> ProcessEngine:
    settings, runtime = compose(settings, EngineSettings)
    instances = InstanceRepository(runtime.db)
    clock = runtime.clock
    engine = Engine(DefinitionRepository(runtime.db), instances, load_catalogue(settings.catalogue_file),
                    clock=clock, lease_seconds=settings.timer_lease_seconds)
    runtime.add_consumer(QUEUE, {}, [Binding(EVENTS, "#")], fallback=engine.handle_event)
    relay = runtime.add_relay([instances.collection])
    engine.on_outbox = lambda case_id, doc: relay.wake(case_id, instances.collection, written=doc)
    return ProcessEngine(settings=settings, runtime=runtime, engine=engine, clock=clock)
