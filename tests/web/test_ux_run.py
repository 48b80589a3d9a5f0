"""Issue 15 items 1, 2 and 13: `make run` (workers/dev.py) checks its ports before starting
anything, stops quietly on Ctrl-C with exit 0, keeps runtime files under instance/, and seeds a
second, slow demo clinic whose simulator answers late."""

import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

import pytest
import requests

from routiq_admin.extensions import db
from routiq_admin.models import Organization
from tests.conftest import ROOT, wait_for
from workers.dev import SLOW_DEMO_KEY


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dev_env(tmp_path, **ports):
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": ROOT,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "PORT": str(_free_port()),
        "SIMULATOR_PORT": str(_free_port()),
        "DEV_REDIS_PORT": str(_free_port()),
        "SMTP_SINK_PORT": str(_free_port()),
        "SCHEDULER_POLL_SECONDS": "1",
    }
    env.update({k: str(v) for k, v in ports.items()})
    return env


@pytest.mark.parametrize("setting", ["PORT", "SIMULATOR_PORT", "DEV_REDIS_PORT", "SMTP_SINK_PORT"])
def test_a_second_make_run_stops_with_one_line_and_starts_nothing(tmp_path, setting):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = _dev_env(tmp_path, **{setting: port})
        done = subprocess.run(
            [sys.executable, "-m", "workers.dev"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert lines == [f"port {port} is in use — is `make run` already running? set {setting}=… to use another"]
    assert not (tmp_path / "instance").exists(), "nothing was migrated, seeded or started"


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_make_run_serves_then_ctrl_c_stops_everything_quietly(tmp_path, stop_signal):
    env = _dev_env(tmp_path)
    log = open(tmp_path / "run.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.dev"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{env['PORT']}/login"

    def up():
        if proc.poll() is not None:
            pytest.fail(f"make run exited early:\n{(tmp_path / 'run.log').read_text()}")
        try:
            return urllib.request.urlopen(url, timeout=2).status == 200
        except OSError:
            return False

    try:
        wait_for(up, timeout=120, interval=0.5, message="make run's web process")
        instance = tmp_path / "instance"
        assert (instance / "gunicorn.ctl").exists(), "gunicorn's control socket lives under instance/"
        assert not (tmp_path / ".gunicorn").exists()
        with sqlite3.connect(instance / "routiq.db") as conn:
            orgs = {row[0] for row in conn.execute("select id from organizations")}
        assert orgs == {"org_demo_clinic", "org_demo_slow_clinic"}
    finally:
        proc.send_signal(stop_signal)
        rc = proc.wait(timeout=60)
    output = (tmp_path / "run.log").read_text()
    assert rc == 0, output
    assert "Traceback" not in output and "overcommit" not in output, output
    assert "overcommit" in (tmp_path / "instance" / "redis.log").read_text()
    for setting in ("PORT", "SIMULATOR_PORT", "DEV_REDIS_PORT", "SMTP_SINK_PORT"):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", int(env[setting]))) != 0, f"{setting} still served"


def test_demo_seed_adds_the_slow_clinic_once(app):
    runner = app.test_cli_runner()
    for _ in range(2):
        assert runner.invoke(args=["demo", "seed", "--slow-api-key", SLOW_DEMO_KEY]).exit_code == 0
    slow = db.session.get(Organization, "org_demo_slow_clinic")
    assert slow.has_credentials and slow.api_key == SLOW_DEMO_KEY


def test_the_simulator_answers_the_slow_key_late(tmp_path):
    port = _free_port()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": ROOT, "INSTANCE_PATH": str(tmp_path)}
    cmd = [sys.executable, "-m", "flask", "--app", "wsgi", "cliniko", "simulate", "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--key-latency", f"{SLOW_DEMO_KEY}=400"], cwd=ROOT, env=env)
    try:
        base = f"http://127.0.0.1:{port}/au1/v1"
        headers = {"User-Agent": "tests (tests@example.com)", "Accept": "application/json"}

        def answers():
            try:
                return requests.get(f"http://127.0.0.1:{port}/_sim/stats", timeout=2).ok
            except requests.ConnectionError:
                return False

        wait_for(answers, timeout=60, message="the simulator")
        start = time.monotonic()
        slow = requests.get(f"{base}/businesses", auth=(SLOW_DEMO_KEY, ""), headers=headers, timeout=30)
        assert slow.ok and time.monotonic() - start >= 0.4  # a lower bound: load only adds to it
    finally:
        proc.terminate()
        proc.wait(timeout=30)
