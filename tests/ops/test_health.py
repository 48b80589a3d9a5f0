"""/healthz and /readyz: in-process answers, then a real gunicorn losing Redis and the database."""

from urllib.parse import urlsplit, urlunsplit

import requests

from routiq_admin import devredis
from routiq_admin.sync.schedule import beat
from tests.conftest import stop, wait_for
from tests.factories import make_token, make_user
from tests.ops.conftest import gunicorn


def test_healthz_and_readyz_report_each_check_without_credentials(app, client, redis_conn):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    body = ready.get_json()
    assert ready.status_code == 200 and body["status"] == "ok"
    checks = body["checks"]
    assert checks["database"] == {"ok": True} and checks["redis"] == {"ok": True}
    assert (
        checks["migrations"]["ok"] is True and checks["migrations"]["current"] == checks["migrations"]["head"]
    )
    assert checks["scheduler"] == {"ok": False, "last_heartbeat": None}
    beat(redis_conn, 30)
    assert client.get("/readyz").get_json()["checks"]["scheduler"]["ok"] is True
    text = ready.get_data(as_text=True)
    for secret in (
        app.config["REDIS_URL"],
        app.config["SQLALCHEMY_DATABASE_URI"],
        app.config["ENCRYPTION_KEY"],
    ):
        assert secret not in text
    assert "no-store" in ready.headers["Cache-Control"]


def test_health_needs_no_login_and_is_never_rate_limited(make_app):
    app = make_app(API_RATE_LIMIT_READ_PER_MINUTE=2)
    with app.app_context():
        make_user()
        _, token = make_token(all_orgs=True)
    client = app.test_client()
    for _ in range(5):
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.get("/readyz", headers={"Authorization": "Bearer wrong"}).status_code == 200


def test_readyz_503_while_redis_is_stopped_then_back(base_config, tmp_path):
    port = devredis.free_port()
    redis_proc, url = devredis.start(port=port, data_dir=tmp_path)
    with gunicorn(base_config, REDIS_URL=url) as web:
        try:
            assert requests.get(f"{web}/readyz", timeout=10).status_code == 200
            stop(redis_proc)
            down = requests.get(f"{web}/readyz", timeout=10)
            assert down.status_code == 503 and down.json()["checks"]["redis"]["ok"] is False
            assert down.json()["checks"]["database"] == {"ok": True}
            assert requests.get(f"{web}/healthz", timeout=10).status_code == 200
            redis_proc, _ = devredis.start(port=port, data_dir=tmp_path)
            wait_for(
                lambda: requests.get(f"{web}/readyz", timeout=10).status_code == 200, message="Redis back"
            )
        finally:
            stop(redis_proc)


def test_readyz_503_while_the_database_is_unreachable_then_back(base_config, tmp_path, tcp_proxy):
    url = base_config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("postgresql"):
        # Through a proxy we cut and restore: the pooled connections die like on a real outage.
        parts = urlsplit(url)
        proxy = tcp_proxy(parts.hostname, parts.port or 5432)
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        config = {
            **base_config,
            "SQLALCHEMY_DATABASE_URI": urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{proxy.port}")),
        }
        outage, recover = proxy.close, proxy.open
        with gunicorn(config) as web:
            assert requests.get(f"{web}/readyz", timeout=10).status_code == 200
            _assert_down_then_back(web, outage, recover)
    else:
        # SQLite: a database file whose folder is gone cannot be opened; it is back once the folder is.
        folder = tmp_path / "db"
        config = {**base_config, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'routiq.db'}"}
        with gunicorn(config) as web:
            _assert_down_then_back(web, lambda: None, lambda: folder.mkdir())


def _assert_down_then_back(web, outage, recover):
    outage()
    down = requests.get(f"{web}/readyz", timeout=30)
    assert down.status_code == 503 and down.json()["checks"]["database"]["ok"] is False
    assert down.json()["checks"]["redis"] == {"ok": True}
    assert requests.get(f"{web}/healthz", timeout=10).status_code == 200
    recover()
    wait_for(lambda: requests.get(f"{web}/readyz", timeout=30).status_code == 200, message="database back")
