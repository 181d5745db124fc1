"""``python -m process_engine``: the BPMN engine (consumer, timer poller, outbox relay, HTTP API)."""

from process_engine.api import create
from process_engine.bootstrap import EngineSettings
from servicekit.http import serve

if __name__ == "__main__":
    settings = EngineSettings()
    serve(create(settings), settings.http_host, settings.http_port)
