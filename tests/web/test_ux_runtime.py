"""Issue 15 item 3: the database file removed under a running app, and a CLI that says what it made."""

import logging
import subprocess
import sys

from routiq_admin import create_app
from routiq_admin.extensions import db
from tests.conftest import ROOT
from tests.factories import login, make_org, make_user


def test_deleted_database_file_answers_503_pages_and_one_log_line(base_config, tmp_path, caplog):
    path = tmp_path / "instance" / "routiq.db"
    path.parent.mkdir()
    config = {
        **base_config,
        "INSTANCE_PATH": str(path.parent),
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}",
    }
    app = create_app(config)
    with app.app_context():
        db.create_all()  # (not the migrations: their logging config would unhook caplog)
        org = make_org()
        make_user(org=org, role="operator")
        client = app.test_client()
        login(client)
        assert client.get("/").status_code == 200
        path.unlink()
        caplog.set_level(logging.ERROR)
        for url in ("/", f"/orgs/{org.id}", "/api/v1/sync/status/org_test"):
            response = client.get(url)
            assert response.status_code == 503, url
        html = client.get("/").get_data(as_text=True)
        assert "The database is unavailable" in html and "Database error" in html
        assert "readonly" not in html
        gone = [r for r in caplog.records if "is gone" in r.getMessage()]
        assert len(gone) == 1 and str(path) in gone[0].getMessage()
        assert not path.exists(), "no fresh empty database was created"
        db.engine.dispose()


def test_cli_says_when_it_creates_keys_or_a_database(base_config, tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "REDIS_URL": base_config["REDIS_URL"],
        "APP_ENV": "test",
        "PYTHONPATH": ROOT,
    }
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "routes"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "created a new secret_key" in done.stderr and "created a new encryption_key" in done.stderr
    assert "no database at" in done.stderr and "creates an empty one" in done.stderr
