"""``python -m process_engine``: the BPMN engine (consumer, timer poller, outbox relay, HTTP API)."""

import uvicorn

from process_engine.api import create
from process_engine.bootstrap import EngineSettings

if __name__ == "__main__":
    settings = EngineSettings()
    uvicorn.run(create(settings), host=getattr(settings, "http_host", "127.0.0.1"), port=settings.http_port,
                log_level="warning")
