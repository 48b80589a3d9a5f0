"""Notification fixtures: a real SMTP sink (aiosmtpd), a real webhook receiver that verifies
Standard Webhooks signatures, and a real RQ worker with short retry intervals."""

import email
import email.policy
import json
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from tests.conftest import serve_simulator, start_process, stop, subprocess_env

GOOD_KEY = "notify-good-key-au1"
# Fast retries for tests: 3 tries, 1 s apart; webhook timeout 1 s.
FAST = {"NOTIFY_RETRY_INTERVALS": [1, 1], "NOTIFY_TIMEOUT_SECONDS": 1.0}
FAST_ENV = {"NOTIFY_RETRY_INTERVALS": "1,1", "NOTIFY_TIMEOUT_SECONDS": "1"}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpSink:
    """aiosmtpd handler that keeps every message it accepts."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(
            {
                "to": envelope.rcpt_tos,
                "subject": message["Subject"],
                "content": message.get_content(),
                "raw": envelope.content.decode(),
            }
        )
        return "250 OK"


@pytest.fixture
def smtp_sink():
    """A real SMTP server on 127.0.0.1; `.url` is its SMTP_URL."""
    from aiosmtpd.controller import Controller

    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    sink.url = f"smtp://127.0.0.1:{controller.port}?starttls=0"
    yield sink
    controller.stop()


class Receiver(ThreadingHTTPServer):
    """Webhook receiver: answers the scripted statuses in turn (then 200), or never (hang)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.secret = None
        self.script = []
        self.hang = False
        self.requests = []
        self.lock = threading.Lock()
        self.url = f"http://127.0.0.1:{self.server_port}/hook"

    def delivered(self):
        """Requests that verified and were answered 2xx."""
        return [r for r in self.requests if r["verified"] and 200 <= r["status"] < 300]


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        server = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            parsed = Webhook(server.secret).verify(body, headers)
            verified = True
        except (WebhookVerificationError, TypeError, ValueError):
            parsed, verified = json.loads(body), False
        with server.lock:
            status = server.script.pop(0) if server.script else 200
            server.requests.append(
                {
                    "verified": verified,
                    "body": parsed,
                    "headers": headers,
                    "status": status,
                    "hang": server.hang,
                }
            )
        if server.hang:
            time.sleep(5)  # longer than NOTIFY_TIMEOUT_SECONDS: the sender gives up first
            return
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


def serve_receiver():
    """Yield a Receiver served from a thread (for fixtures)."""
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def receiver():
    yield from serve_receiver()


@pytest.fixture
def small_sim():
    """A small simulator that accepts only GOOD_KEY."""
    yield from serve_simulator(patients=5, appointments=5, keys=[GOOD_KEY])


@pytest.fixture
def start_worker(base_config, small_sim, smtp_sink, tmp_path):
    """Start a real RQ worker pointed at the simulator and the sink, and the real scheduler process
    that brings retries back (polling every 0.5 s, no periodic sync tick).

    Returns (worker process, path of the log both write); extra settings go in as environment.
    """
    procs = []

    def start(**extra):
        log = tmp_path / f"worker-{len(procs)}.log"
        env = subprocess_env(
            base_config,
            CLINIKO_BASE_URL=small_sim.base_url,
            SMTP_URL=smtp_sink.url,
            SCHEDULER_POLL_SECONDS="0.5",
            ENABLE_SYNC_SCHEDULER="false",
            **{**FAST_ENV, **extra},
        )
        with open(log, "wb") as out:
            for module in ("workers.scheduler", "workers.worker"):
                procs.append(start_process(["-m", module], env, stdout=out, stderr=subprocess.STDOUT))
        return procs[-1], log

    yield start
    for proc in procs:
        stop(proc)
