"""ENCRYPTION_KEY rotation: a comma-separated list (first encrypts, any decrypts) and `flask keys rotate`."""

import signal
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from routiq_admin import crypto
from routiq_admin.extensions import db
from routiq_admin.models import Organization
from tests.conftest import ROOT, subprocess_env, wait_for

A, B = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def _rotate(config, keys, **kwargs):
    env = subprocess_env(config, ENCRYPTION_KEY=keys)
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "keys", "rotate"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _seed(make_app, count):
    """Create `count` organizations whose Cliniko keys are encrypted with key A (and one without)."""
    with make_app(ENCRYPTION_KEY=A).app_context():
        for n in range(count):
            org = Organization(id=f"org_{n:04d}", name=f"Clinic {n}")
            org.set_api_key(f"cliniko-key-{n:04d}-au{n % 4 + 1}")
            db.session.add(org)
        db.session.add(Organization(id="org_nokey", name="No key yet"))
        db.session.commit()


def _clear_keys(app):
    with app.app_context():
        db.session.remove()
        return {o.id: o.api_key for o in db.session.execute(select(Organization)).scalars()}


def _on_first_key(app):
    with app.app_context():
        db.session.remove()
        stored = db.session.execute(
            select(Organization.cliniko_api_key_encrypted).order_by(Organization.id)
        ).scalars()
        return [crypto.is_current(token) for token in stored if token]


def _expected(count):
    return {**{f"org_{n:04d}": f"cliniko-key-{n:04d}-au{n % 4 + 1}" for n in range(count)}, "org_nokey": None}


def test_keys_rotate_moves_every_key_to_the_first_key(make_app, base_config):
    _seed(make_app, 3)
    assert _clear_keys(make_app(ENCRYPTION_KEY=f"{B},{A}")) == _expected(3)
    done = _rotate(base_config, f"{B},{A}")
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    assert "rotated 3 stored key(s); 0 already on the first key" in out
    again = _rotate(base_config, f"{B}, {A}")
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0 and "rotated 0 stored key(s); 3 already on the first key" in out
    assert _clear_keys(make_app(ENCRYPTION_KEY=B)) == _expected(3)
    with pytest.raises(RuntimeError, match="cannot be decrypted") as old_only:
        _clear_keys(make_app(ENCRYPTION_KEY=A))
    assert "cliniko-key" not in str(old_only.value)
    for stream in (out, err):
        assert "cliniko-key" not in stream and A not in stream and B not in stream


def test_a_rotation_killed_midway_leaves_every_key_readable_and_a_rerun_completes(make_app, base_config):
    count = 300
    _seed(make_app, count)
    both = make_app(ENCRYPTION_KEY=f"{B},{A}")
    proc = _rotate(base_config, f"{B},{A}")
    # Freeze it as soon as its first commit is visible, then kill it: it is mid-way.
    wait_for(lambda: proc.poll() is not None or any(_on_first_key(both)[:1]), timeout=120, interval=0.005)
    proc.send_signal(signal.SIGSTOP)
    proc.kill()
    proc.communicate(timeout=30)
    moved = _on_first_key(both)
    assert 0 < sum(moved) < count, "the rotation was not interrupted mid-way"
    assert _clear_keys(both) == _expected(count)
    rerun = _rotate(base_config, f"{B},{A}")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"rotated {count - sum(moved)} stored key(s); {sum(moved)} already on the first key" in out
    assert _clear_keys(make_app(ENCRYPTION_KEY=B)) == _expected(count)


def test_encryption_key_lists_are_checked_at_start(tmp_path):
    from routiq_admin.config import ConfigError, load_config

    assert load_config(tmp_path, env={"ENCRYPTION_KEY": f"{B}, {A}"})["ENCRYPTION_KEY"] == f"{B}, {A}"
    for bad in (f"{B},not-a-key", " , "):
        with pytest.raises(ConfigError, match="ENCRYPTION_KEY") as err:
            load_config(tmp_path, env={"ENCRYPTION_KEY": bad})
        assert B not in str(err.value)
