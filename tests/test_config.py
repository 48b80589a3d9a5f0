"""Settings: production requirements, generated development keys, the app factory."""

import multiprocessing

import pytest

from routiq_admin import create_app
from routiq_admin.config import ConfigError, load_config


def test_production_requires_every_secret_and_service(tmp_path):
    env = {"APP_ENV": "production", "DATABASE_URL": "postgresql://x/y"}
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, env=env)
    message = str(info.value)
    for name in ("REDIS_URL", "SECRET_KEY", "ENCRYPTION_KEY"):
        assert name in message
    assert "DATABASE_URL" not in message


def test_production_with_everything_set_loads(tmp_path):
    from cryptography.fernet import Fernet

    env = {
        "APP_ENV": "production",
        "DATABASE_URL": "postgres://u@h/db",
        "REDIS_URL": "redis://h:6379/0",
        "SECRET_KEY": "s" * 40,
        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "SYNC_INTERVAL_MINUTES": "15",
        "ENABLE_SYNC_SCHEDULER": "false",
    }
    config = load_config(tmp_path, env=env)
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql://u@h/db"
    assert config["SYNC_INTERVAL_MINUTES"] == 15
    assert config["ENABLE_SYNC_SCHEDULER"] is False
    assert config["SESSION_COOKIE_SECURE"] is True
    assert not list(tmp_path.iterdir()), "production must not write generated keys"


def test_bad_encryption_key_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="ENCRYPTION_KEY"):
        load_config(tmp_path, env={"ENCRYPTION_KEY": "not-a-key"})


def test_development_defaults(tmp_path):
    config = load_config(tmp_path, env={})
    assert config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'routiq.db'}"
    assert config["REDIS_URL"] is None
    assert config["SYNC_INTERVAL_MINUTES"] == 60
    assert config["STALE_SYNC_MINUTES"] == 15
    assert config["CLINIKO_RATE_LIMIT_PER_MINUTE"] == 200
    assert config["CLINIKO_BASE_URL"] == "https://api.{shard}.cliniko.com/v1"


def _load_keys(path, queue):
    config = load_config(path, env={})
    queue.put((config["SECRET_KEY"], config["ENCRYPTION_KEY"]))


def test_processes_starting_together_agree_on_generated_keys(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_load_keys, args=(tmp_path, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    results = {queue.get(timeout=30) for _ in procs}
    for p in procs:
        p.join()
    assert len(results) == 1
    assert (tmp_path / "secret_key").read_text() == results.pop()[0]


def test_factory_takes_config_without_env(base_config, migrated):
    app = create_app({**base_config, "SYNC_INTERVAL_MINUTES": 5})
    assert app.config["SYNC_INTERVAL_MINUTES"] == 5
    assert app.config["TESTING"] is True
    assert {"auth", "orgs", "api_orgs"} <= set(app.blueprints)
