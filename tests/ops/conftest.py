"""Real processes for the operator tests: gunicorn (with gunicorn.conf.py), and a TCP proxy to cut
the database off and bring it back."""

import contextlib
import socket
import threading

import pytest
import requests

from routiq_admin.devredis import free_port
from tests.conftest import start_process, stop, subprocess_env, wait_for


@contextlib.contextmanager
def gunicorn(config, log=None, **env):
    """Serve wsgi:app with the real gunicorn.conf.py; yield its base URL once /healthz answers."""
    port = free_port()
    proc = start_process(
        ["-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        subprocess_env(config, PORT=port, **{"WEB_CONCURRENCY": 1, **env}),
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            return requests.get(f"{base}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            assert proc.poll() is None, "gunicorn exited"
            return False

    try:
        wait_for(up, timeout=60, interval=0.2, message="gunicorn")
        yield base
    finally:
        stop(proc)


class TcpProxy:
    """Forward a local port to (host, port); close() drops every connection, open() listens again."""

    def __init__(self, host, port):
        self.target, self.port = (host, port), free_port()
        self.sockets, self.lock, self.listener = [], threading.Lock(), None

    def open(self):
        self.listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self):
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self.sockets.clear()


@pytest.fixture
def tcp_proxy():
    proxies = []

    def make(host, port):
        proxy = TcpProxy(host, port)
        proxy.open()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        with contextlib.suppress(OSError):
            proxy.close()
