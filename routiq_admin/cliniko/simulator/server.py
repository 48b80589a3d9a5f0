"""Serving a Simulator over real HTTP: in a background thread (tests) or in the foreground (CLI)."""

from __future__ import annotations

import threading

from werkzeug.serving import WSGIRequestHandler, make_server

from .app import Simulator


class _Handler(WSGIRequestHandler):
    def send_response(self, code, message=None):
        # the app sends Date itself (from the simulated clock); http.server would add a second one
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())


class _QuietHandler(_Handler):
    def log_request(self, *args, **kwargs):
        pass


class SimulatorServer:
    """Serves a Simulator over real HTTP from a background daemon thread."""

    def __init__(self, simulator, host="127.0.0.1", port=0):
        self.simulator, self.host = simulator, host
        self._server = make_server(host, port, simulator, threaded=True, request_handler=_QuietHandler)
        self.port = self._server.server_port
        self.base_url = f"http://{host}:{self.port}/{{shard}}/v1"
        self._thread = None

    def url(self, shard="au1"):
        """Base URL with the shard filled in."""
        return self.base_url.replace("{shard}", shard)

    def start(self):
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="cliniko-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self):
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def serve(host="127.0.0.1", port=8900, key_latency=None, **simulator_kwargs):
    """Run a simulator in the foreground until interrupted (key_latency: {api key: ms})."""
    sim = Simulator(**simulator_kwargs)
    for key, ms in (key_latency or {}).items():
        sim.inject("latency", None, key=key, ms=ms)
    server = make_server(host, port, sim, threaded=True, request_handler=_Handler)
    print(
        f"Cliniko simulator listening: CLINIKO_BASE_URL=http://{host}:{server.server_port}/{{shard}}/v1",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
