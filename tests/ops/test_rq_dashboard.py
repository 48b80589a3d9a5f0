"""rq-dashboard at /admin/rq: superusers only (not org admins, anonymous people or API tokens),
its requeue button through our CSRF check, a header link for superusers."""

from rq import SimpleWorker
from rq.job import Job

from routiq_admin.extensions import get_queue, get_redis
from tests.factories import login, make_org, make_token, make_user
from tests.web.helpers import csrf_from

PAGES = (
    "/admin/rq/",
    "/admin/rq/0/view/jobs",
    "/admin/rq/0/data/queues.json",
    "/admin/rq/0/data/workers.json",
)


def test_only_superusers_see_the_queue(app, client):
    org = make_org()
    make_user("root@example.com", superuser=True)
    make_user("admin@example.com", org=org, role="admin")
    _, org_token = make_token(org)
    _, all_token = make_token(all_orgs=True)
    for path in PAGES:
        anonymous = client.get(path)
        assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"], path
        for token in (org_token, all_token):
            assert client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 403, path
    login(client, "admin@example.com")
    assert "/admin/rq/" not in client.get("/").get_data(as_text=True)
    for path in PAGES:
        assert client.get(path).status_code == 403, path
    assert client.post("/admin/rq/queue/routiq-test/failed/empty").status_code == 403
    client.post("/logout")
    login(client, "root@example.com")
    assert 'href="/admin/rq/"' in client.get("/").get_data(as_text=True)
    for path in PAGES:
        assert client.get(path).status_code == 200, path
    # A superuser's session does not lend itself to a token.
    assert client.get(PAGES[0], headers={"Authorization": f"Bearer {all_token}"}).status_code == 403


def _failed_job(app):
    queue = get_queue(app)
    job = queue.enqueue("workers.jobs.no_such_job")
    SimpleWorker([queue], connection=get_redis(app)).work(burst=True)
    assert job.get_status(refresh=True) == "failed"
    return job


def test_requeue_works_with_the_csrf_cookie_and_fails_without(make_app):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        make_user("root@example.com", superuser=True)
        job = _failed_job(app)
        client = app.test_client()
        token = csrf_from(client.get("/login").get_data(as_text=True))
        client.post(
            "/login", data={"email": "root@example.com", "password": "pw-123456", "csrf_token": token}
        )
        page = client.get("/admin/rq/")
        assert page.status_code == 200 and "'unsafe-inline'" in page.headers["Content-Security-Policy"]
        cookie = client.get_cookie("_csrf_token", path="/admin/rq")
        assert cookie is not None and cookie.same_site == "Strict" and not cookie.http_only
        assert "'unsafe-inline'" not in client.get("/").headers["Content-Security-Policy"]

        requeue = f"/admin/rq/job/{job.id}/requeue"
        assert client.post(requeue).status_code == 403
        assert client.post(requeue, headers={"X-CSRFToken": "forged"}).status_code == 403
        assert Job.fetch(job.id, connection=get_redis(app)).get_status() == "failed"
        done = client.post(requeue, headers={"X-CSRFToken": cookie.value})
        assert done.status_code == 200
        assert Job.fetch(job.id, connection=get_redis(app)).get_status() == "queued"
