"""`make run`: migrate, seed the demo, then run web + worker + scheduler + simulator together.

Uses the embedded redis-server when REDIS_URL is unset and sets REDIS_URL for every process,
so they all share one server. Ctrl-C stops them all.
"""

import os
import subprocess
import sys

from honcho.manager import Manager

from routiq_admin import devredis

PY = sys.executable
SIMULATOR_PORT = int(os.environ.get("SIMULATOR_PORT", "8900"))


def main():
    env = dict(os.environ)
    env.setdefault("PORT", "5000")
    env.setdefault("CLINIKO_BASE_URL", f"http://127.0.0.1:{SIMULATOR_PORT}/{{shard}}/v1")
    env.setdefault("SYNC_INTERVAL_MINUTES", "60")
    manager = Manager()
    if not env.get("REDIS_URL"):
        port = devredis.free_port()
        env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        manager.add_process("redis", f"{PY} -m routiq_admin.devredis {port}", env=env)
    mail_note = f"Mail: {env.get('SMTP_URL') or env.get('SMTP_HOST')}"
    if not env.get("SMTP_URL") and not env.get("SMTP_HOST"):
        # A local SMTP sink that prints every message (invitations, sync notifications) here.
        smtp_port = devredis.free_port()
        env["SMTP_URL"] = f"smtp://127.0.0.1:{smtp_port}?starttls=0"
        manager.add_process("mail", f"{PY} -m aiosmtpd -n -l 127.0.0.1:{smtp_port}", env=env)
        mail_note = f"Mail: printed below as `mail |` (an SMTP sink on 127.0.0.1:{smtp_port})"
    flask = [PY, "-m", "flask", "--app", "wsgi"]
    subprocess.run([*flask, "db", "upgrade"], env=env, check=True)
    subprocess.run([*flask, "demo", "seed"], env=env, check=True)
    simulate = f"{PY} -m flask --app wsgi cliniko simulate --port {SIMULATOR_PORT}"
    manager.add_process("simulator", simulate, env=env)
    manager.add_process("web", f"{PY} -m gunicorn -c gunicorn.conf.py wsgi:app", env=env)
    manager.add_process("worker", f"{PY} -m workers.worker", env=env)
    manager.add_process("scheduler", f"{PY} -m workers.scheduler", env=env)
    print(f"\n  Routiq Admin: http://127.0.0.1:{env['PORT']}/  (Ctrl-C stops everything)", flush=True)
    print(f"  {mail_note}\n", flush=True)
    manager.loop()
    sys.exit(manager.returncode)


if __name__ == "__main__":
    main()
