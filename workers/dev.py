"""`make run`: migrate, seed the demo, then run web + worker + scheduler + simulator together.

Uses the embedded redis-server when REDIS_URL is unset (started first, stopped last) and sets
REDIS_URL for every process, so they all share one server. Every port is a setting; they are
checked before anything starts, so a second `make run` stops with one line instead of
half-starting against the first one's files. Ctrl-C (or SIGTERM) stops them all and exits 0.
Runtime files live under instance/.
"""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from honcho.manager import SIGNALS, Manager

from routiq_admin import devredis

PY = sys.executable
# The second demo clinic answers every Cliniko request this slowly, so a sync takes ~20 s.
SLOW_DEMO_KEY, SLOW_DEMO_LATENCY_MS = "demo-slow-clinic-key-au1", 1500
STOPPED_BY_US = {SIGNALS[signal.SIGINT]["rc"], SIGNALS[signal.SIGTERM]["rc"]}


def ports(env):
    """Return (setting, port, address) for every port `make run` listens on."""
    wanted = [
        ("PORT", int(env["PORT"]), "0.0.0.0"),
        ("SIMULATOR_PORT", int(env["SIMULATOR_PORT"]), "127.0.0.1"),
    ]
    if not env.get("REDIS_URL"):
        wanted.append(("DEV_REDIS_PORT", int(env["DEV_REDIS_PORT"]), "127.0.0.1"))
    if not env.get("SMTP_URL") and not env.get("SMTP_HOST"):
        wanted.append(("SMTP_SINK_PORT", int(env["SMTP_SINK_PORT"]), "127.0.0.1"))
    return wanted


def port_in_use(port, address):
    """Tell whether something already listens on the port (TIME_WAIT leftovers do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
            s.listen(1)  # with SO_REUSEADDR, bind alone can succeed beside a listener
        except OSError:
            return True
    return False


def busy_port_message(env):
    """Return the one line saying which port is taken, or None when all are free."""
    for setting, port, address in ports(env):
        if port_in_use(port, address):
            return f"port {port} is in use — is `make run` already running? set {setting}=… to use another"
    return None


def main():
    env = dict(os.environ)
    env.setdefault("PORT", "5000")
    env.setdefault("SIMULATOR_PORT", "8900")
    env.setdefault("DEV_REDIS_PORT", "6390")
    env.setdefault("SMTP_SINK_PORT", "8925")
    busy = busy_port_message(env)
    if busy:
        print(busy, file=sys.stderr)
        sys.exit(1)
    instance = Path(env.get("INSTANCE_PATH") or Path.cwd() / "instance").resolve()
    instance.mkdir(parents=True, exist_ok=True)
    env["INSTANCE_PATH"] = str(instance)
    sim_port = env["SIMULATOR_PORT"]
    env.setdefault("CLINIKO_BASE_URL", f"http://127.0.0.1:{sim_port}/{{shard}}/v1")
    env.setdefault("SYNC_INTERVAL_MINUTES", "60")
    redis_proc = None
    if not env.get("REDIS_URL"):
        # Outside honcho, so it stops after every process that uses it (no shutdown tracebacks);
        # its log (with the kernel's memory-overcommit warning) goes to instance/redis.log.
        redis_proc, env["REDIS_URL"] = devredis.start(
            int(env["DEV_REDIS_PORT"]), instance, instance / "redis.log"
        )
    try:
        sys.exit(run(env, instance))
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)


def run(env, instance):
    """Migrate, seed, then run the processes until one stops or we are stopped; return the exit status."""
    sim_port = env["SIMULATOR_PORT"]
    manager = Manager()
    mail_note = f"Mail: {env.get('SMTP_URL') or env.get('SMTP_HOST')}"
    if not env.get("SMTP_URL") and not env.get("SMTP_HOST"):
        # A local SMTP sink that prints every message (invitations, sync notifications) here.
        smtp_port = env["SMTP_SINK_PORT"]
        env["SMTP_URL"] = f"smtp://127.0.0.1:{smtp_port}?starttls=0"
        manager.add_process("mail", f"{PY} -m aiosmtpd -n -l 127.0.0.1:{smtp_port}", env=env)
        mail_note = f"Mail: printed below as `mail |` (an SMTP sink on 127.0.0.1:{smtp_port})"
    flask = [PY, "-m", "flask", "--app", "wsgi"]
    subprocess.run([*flask, "db", "upgrade"], env=env, check=True)
    subprocess.run([*flask, "demo", "seed", "--slow-api-key", SLOW_DEMO_KEY], env=env, check=True)
    simulate = (
        f"{PY} -m flask --app wsgi cliniko simulate --port {sim_port}"
        f" --key-latency {SLOW_DEMO_KEY}={SLOW_DEMO_LATENCY_MS}"
    )
    manager.add_process("simulator", simulate, env=env)
    # gunicorn's control socket defaults to a path shared by every gunicorn of this user.
    web = f"{PY} -m gunicorn -c gunicorn.conf.py --control-socket {instance / 'gunicorn.ctl'} wsgi:app"
    manager.add_process("web", web, env=env)
    manager.add_process("worker", f"{PY} -m workers.worker", env=env)
    manager.add_process("scheduler", f"{PY} -m workers.scheduler", env=env)
    print(f"\n  Routiq Admin: http://127.0.0.1:{env['PORT']}/  (Ctrl-C stops everything)", flush=True)
    print(f"  {mail_note}\n", flush=True)
    manager.loop()
    return 0 if manager.returncode in STOPPED_BY_US else manager.returncode


if __name__ == "__main__":
    main()
