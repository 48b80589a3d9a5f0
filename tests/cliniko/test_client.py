"""ClinikoClient against the simulator over real HTTP: paging, filters, limits, retries, errors."""

import logging
import pickle
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from routiq_admin.cliniko.client import ClinikoClient, key_digest
from routiq_admin.cliniko.errors import (
    ApiConnectionFailed,
    ClinikoError,
    CredentialsNotFound,
    InvalidCredentials,
    InvalidDataFormat,
    RateLimitExceeded,
)
from routiq_admin.cliniko.parse import appointment_row, patient_row
from routiq_admin.cliniko.ratelimit import SharedRateLimiter
from tests.conftest import assert_logs_clean

KEY = "demo-key-au4"
UA = "Routiq Admin tests (tests@example.com)"


@pytest.fixture
def sim(sim_server):
    return sim_server.simulator


@pytest.fixture
def make_client(sim_server):
    clients = []

    def make(key=KEY, **kwargs):
        # A fresh limiter identity per test: the in-process window outlives a test.
        kwargs = {
            "base_url": sim_server.base_url,
            "user_agent": UA,
            "backoff_factor": 0.01,
            "limiter_key": f"test:{uuid.uuid4()}",
            **kwargs,
        }
        clients.append(ClinikoClient(key, **kwargs))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def records(pages):
    return [r for page in pages for r in page.records]


def statuses(sim):
    return [entry[5] for entry in sim.request_log]


def test_missing_key_and_shard():
    with pytest.raises(CredentialsNotFound) as err:
        ClinikoClient("")
    assert err.value.error_code == "CLINIKO_CREDENTIALS_NOT_FOUND"
    client = ClinikoClient("MS0xLTExMjM0NTY3-UK2")
    assert (client.shard, client.base_url) == ("uk2", "https://api.uk2.cliniko.com/v1")
    assert ClinikoClient("no-suffix-key").shard == "au1"


def test_from_config(sim_server):
    config = {
        "CLINIKO_BASE_URL": sim_server.base_url,
        "CLINIKO_USER_AGENT": UA,
        "CLINIKO_RATE_LIMIT_PER_MINUTE": 150,
        "CLINIKO_TIMEOUT_SECONDS": 7,
    }
    with ClinikoClient.from_config(KEY, config, concurrency=2) as client:
        assert client.base_url == sim_server.url("au4")
        assert (client.timeout, client.limiter.limit, client.concurrency) == (7.0, 150, 2)
        result = client.test_connection()
    assert result["user"]["id"] and isinstance(result["response_time_ms"], int)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_pages_and_totals(make_client, sim, concurrency):
    client = make_client(concurrency=concurrency)
    pages = list(client.fetch_patients())
    ids = [r["id"] for r in records(pages)]
    assert sorted(p.number for p in pages) == list(range(1, 8))
    assert {p.total_entries for p in pages} == {651}
    assert len(ids) == len(set(ids)) == 651 and set(ids) == set(sim.account(KEY).patient_ids())
    assert client.requests_made == len(sim.request_log) == 7
    assert all(isinstance(i, str) for i in ids)
    server_time = pages[0].server_time
    assert server_time.tzinfo is not None and abs(server_time - datetime.now(UTC)) < timedelta(seconds=5)


def test_concurrent_paging_holds_at_most_concurrency_pages(make_client, sim):
    client = make_client(concurrency=2)
    pages = client.iter_pages("patients", filters=["archived_at:*"], per_page=50)  # 14 pages
    next(pages)
    next(pages)
    time.sleep(0.3)  # a slow consumer: fetching must not run ahead
    assert client.requests_made <= 4  # page 1, two in flight, one submitted when page 2 was taken
    rest = list(pages)
    assert len(rest) == 12 and client.requests_made == 14


def test_abandoned_iteration_stops_fetching(make_client, sim):
    client = make_client(concurrency=2)
    pages = client.iter_pages("patients", per_page=20)  # 33 pages
    next(pages)
    next(pages)
    pages.close()
    made = client.requests_made
    time.sleep(0.2)
    assert client.requests_made == made <= 5


def test_incremental_returns_exactly_the_changed_records(make_client, sim):
    account = sim.account(KEY)
    mark = datetime.now(UTC)
    ids = account.patient_ids()
    account.update_patient(ids[3], first_name="Changed")
    account.archive_patient(ids[10])
    new = account.add_patient(first_name="Brand", last_name="New")
    client = make_client()
    pages = list(client.fetch_patients(updated_since=mark))
    got = records(pages)
    assert {r["id"] for r in got} == {ids[3], ids[10], new["id"]}
    assert client.requests_made == 1
    query = sim.request_log[-1][4]
    assert "updated_at%3A%3E%3D" in query and "sort=updated_at%3Aasc" in query
    updated = [patient_row(r)["cliniko_updated_at"] for r in got]
    assert updated == sorted(updated) and min(updated) >= mark.replace(microsecond=0)


def test_updated_since_must_be_aware(make_client):
    with pytest.raises(ValueError):
        make_client().fetch_patients(updated_since=datetime(2025, 1, 1))


def test_archived_and_cancelled_inclusion(make_client, sim):
    account = sim.account(KEY)
    client = make_client()
    all_patients = {r["id"] for r in records(client.fetch_patients())}
    unarchived = {r["id"] for r in records(client.fetch_patients(include_archived=False))}
    assert all_patients == set(account.patient_ids())
    assert unarchived == set(account.patient_ids(include_archived=False)) < all_patients

    appointment_id = account.appointment_ids(include_archived=False, include_cancelled=False)[0]
    account.cancel_appointment(appointment_id)
    everything = {r["id"] for r in records(client.fetch_appointments())}
    live = {
        r["id"] for r in records(client.fetch_appointments(include_archived=False, include_cancelled=False))
    }
    assert everything == set(account.appointment_ids()) and len(everything) == 296
    assert live == set(account.appointment_ids(include_archived=False, include_cancelled=False))
    assert appointment_id in everything and appointment_id not in live


def test_appointment_window(make_client, sim):
    start, end = datetime.now(UTC) - timedelta(days=30), datetime.now(UTC) + timedelta(days=30)
    got = [
        appointment_row(r)
        for r in records(make_client().fetch_appointments(starts_from=start, starts_to=end))
    ]
    expected = [
        r
        for r in (
            appointment_row(sim.account(KEY).get("appointments", i))
            for i in sim.account(KEY).appointment_ids()
        )
        if start.replace(microsecond=0) <= r["starts_at"] < end
    ]
    assert got and {r["cliniko_id"] for r in got} == {r["cliniko_id"] for r in expected}


def test_fetch_by_id_batches(make_client, sim):
    account = sim.account(KEY)
    archived = set(account.patient_ids()) - set(account.patient_ids(include_archived=False))
    wanted = account.patient_ids()[:150]
    assert archived & set(wanted)  # the batch includes archived patients, which come back too
    client = make_client()
    got = records(client.fetch_patients(ids=wanted + wanted[:5]))
    assert sorted(r["id"] for r in got) == sorted(wanted)
    assert client.requests_made == 2
    assert "id%3A%3D" in sim.request_log[0][4] and "archived_at%3A%2A" in sim.request_log[0][4]
    assert list(client.fetch_patients(ids=[])) == [] and client.requests_made == 2
    with pytest.raises(ValueError):
        client.fetch_patients(ids=["12,13"])


def test_reference_data_and_relations(make_client, sim):
    account = sim.account(KEY)
    client = make_client()
    businesses = records(client.fetch_businesses())
    types = records(client.fetch_appointment_types())
    active = records(client.fetch_practitioners())
    inactive = records(client.fetch_practitioners(inactive=True))
    # /practitioners may or may not list inactive ones too (the simulator does): ids are upserted
    assert len(businesses) == 2 and len({p["id"] for p in active + inactive}) == 5 and inactive
    assert len(types) == 6 and any(t["archived_at"] for t in types)  # the archived type is included
    assert not any(p["active"] for p in inactive)

    rows = [appointment_row(r) for r in records(client.fetch_appointments())]
    patient_ids = set(account.patient_ids())
    assert all(r["patient_cliniko_id"] in patient_ids for r in rows)
    assert {r["practitioner_cliniko_id"] for r in rows} <= {p["id"] for p in active + inactive}
    assert {r["appointment_type_cliniko_id"] for r in rows} <= {t["id"] for t in types}
    assert {r["business_cliniko_id"] for r in rows} <= {b["id"] for b in businesses}
    # every patient the simulator serves parses
    assert len([patient_row(r) for r in records(client.fetch_patients())]) == 651


def test_401_is_invalid_credentials(make_client, sim):
    sim.revoke_key(KEY)
    with pytest.raises(InvalidCredentials) as err:
        make_client().get_user()
    assert (err.value.status, err.value.error_code, err.value.error_type) == (
        401,
        "CLINIKO_UNAUTHORIZED",
        "invalid_credentials",
    )


def test_403_on_bad_user_agent(make_client):
    with pytest.raises(InvalidCredentials) as err:
        make_client(user_agent="python-requests").get_user()
    assert (err.value.status, err.value.error_code) == (403, "CLINIKO_FORBIDDEN")
    assert "User-Agent" in err.value.message


def test_other_4xx_is_a_clear_cliniko_error(make_client):
    with pytest.raises(ClinikoError) as err:
        list(make_client().iter_pages("patients", filters=["nonsense:=1"]))
    assert type(err.value) is ClinikoError and err.value.status == 422
    assert "422" in err.value.message and "Validation Failed" in err.value.message


def test_429_waits_until_reset_then_succeeds(make_client, sim):
    waits = []
    client = make_client(on_wait=lambda until, seconds, reason: waits.append((until, seconds, reason)))
    sim.inject("rate_limit", reset_seconds=1)
    started = time.monotonic()
    assert client.get_user()["id"]
    elapsed = time.monotonic() - started
    assert client.rate_limit_waits == 1 and client.requests_made == 2
    assert len(waits) == 1 and waits[0][2] == "rate_limited" and waits[0][1] >= 1
    assert waits[0][0] > datetime.now(UTC) - timedelta(seconds=3)
    assert elapsed >= 0.9 and client.rate_limit_wait_seconds == pytest.approx(waits[0][1])
    assert statuses(sim) == [429, 200]


def test_429_without_waiting_raises_with_retry_after(make_client, sim):
    client = make_client(wait_on_rate_limit=False)
    sim.inject("rate_limit", reset_seconds=5)
    started = time.monotonic()
    with pytest.raises(RateLimitExceeded) as err:
        client.get_user()
    assert time.monotonic() - started < 0.5
    assert isinstance(err.value.retry_after, int) and 4 <= err.value.retry_after <= 6
    assert err.value.error_code == "CLINIKO_RATE_LIMITED" and err.value.details()["retry_after"]


def test_repeated_429s_are_bounded(make_client, sim, monkeypatch):
    monkeypatch.setattr("routiq_admin.cliniko.client.MAX_RATE_LIMIT_RETRIES", 2)
    monkeypatch.setattr(ClinikoClient, "_pause", staticmethod(lambda seconds, stop: None))
    sim.inject("rate_limit", count=5, reset_seconds=1)
    client = make_client()
    with pytest.raises(RateLimitExceeded):
        client.get_user()
    assert client.requests_made == 3 and client.rate_limit_waits == 2


def test_5xx_then_success(make_client, sim):
    sim.inject("server_error", count=2, status=503)
    client = make_client()
    assert len(records(client.fetch_businesses())) == 2
    assert statuses(sim) == [503, 503, 200] and client.requests_made == 3


def test_persistent_5xx_gives_up(make_client, sim):
    sim.inject("server_error", count=None, status=502)
    client = make_client(retries=2)
    with pytest.raises(ApiConnectionFailed) as err:
        client.get_user()
    assert err.value.error_code == "CLINIKO_API_UNAVAILABLE" and err.value.http_status == 502
    assert "3 attempts" in err.value.message
    assert statuses(sim) == [502, 502, 502]


def test_timeout(make_client, sim):
    sim.inject("timeout", count=None, seconds=3)
    client = make_client(timeout=0.5, retries=1)
    started = time.monotonic()
    with pytest.raises(ApiConnectionFailed) as err:
        client.get_user()
    assert time.monotonic() - started < 2
    assert err.value.error_code == "CLINIKO_API_TIMEOUT" and client.requests_made == 2


def test_connection_refused(sim_server):
    port = sim_server.port
    sim_server.stop()
    client = ClinikoClient(
        KEY, base_url=f"http://127.0.0.1:{port}/{{shard}}/v1", retries=1, backoff_factor=0.01
    )
    with pytest.raises(ApiConnectionFailed) as err:
        client.get_user()
    assert err.value.error_code == "CLINIKO_API_UNAVAILABLE" and client.requests_made == 2


@pytest.mark.parametrize("fault", ["malformed_json", "wrong_shape"])
def test_bad_bodies_are_invalid_data(make_client, sim, fault):
    sim.inject(fault)
    with pytest.raises(InvalidDataFormat) as err:
        list(make_client().fetch_patients())
    assert err.value.error_code == "CLINIKO_INVALID_DATA" and err.value.http_status == 502


def test_error_in_a_concurrent_page_reaches_the_caller(make_client, sim):
    sim.inject("wrong_shape", after=3)
    with pytest.raises(InvalidDataFormat):
        list(make_client(concurrency=3).fetch_patients())


def test_errors_pickle():
    for err in (InvalidCredentials(403), RateLimitExceeded(2.5), ApiConnectionFailed(timeout=True)):
        copy = pickle.loads(pickle.dumps(err))
        assert (type(copy), copy.details(), str(copy)) == (type(err), err.details(), str(err))


def test_shared_budget_across_clients_without_waiting(make_client, sim, redis_client):
    """Two clients on one key (threads) share one 20/min budget: exactly 20 requests, zero 429s."""
    sim.set_rate_limit(20)
    clients = [
        make_client(redis=redis_client, rate_limit_per_minute=20, wait_on_rate_limit=False, limiter_key=None)
        for _ in range(2)
    ]
    done, refused = [], []

    def hammer(client):
        try:
            while True:
                client.get_user()
                done.append(1)
        except RateLimitExceeded as exc:
            refused.append(exc)

    threads = [threading.Thread(target=hammer, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(done) == 20 and len(refused) == 2 and 429 not in statuses(sim)
    assert all(55 <= exc.retry_after <= 61 for exc in refused)
    assert sim.max_requests_in_window(KEY) == 20


def test_concurrent_paging_never_exceeds_the_shared_limit(make_client, sim, redis_client):
    """Two concurrent pagers on one key stay within a limit the simulator enforces, with zero 429s.

    A real 200/min limit needs over a minute to exercise, so both sides are scaled down: the
    simulator allows 5 requests per rolling 1 s and the clients share a limiter of 5 per 3 s.
    The limiter counts a request when it takes the slot (Redis time), the simulator when the
    request reaches its rate check (after the client thread, the connection, the server's lock).
    If a request lags there by more than the margin behind the one five slots later, the
    simulator sees six in its window. That lag reached 0.5 s on two oversubscribed cores, so the
    margin is 2 s (the production limiter keeps 1 s: 61 s against Cliniko's 60 s, with
    network-sized lags). 14 page requests then need two limiter windows.
    """
    sim.set_rate_limit(5)
    sim.rate_limit_window = 1.0
    window = 3.0
    waits = []
    clients = []
    for _ in range(2):
        client = make_client(concurrency=4, on_wait=lambda *args: waits.append(args))
        client.limiter = SharedRateLimiter(redis_client, key_digest(KEY), 5, window_seconds=window)
        clients.append(client)
    results = {}

    def fetch(client):
        results[id(client)] = [r["id"] for r in records(client.fetch_patients())]

    threads = [threading.Thread(target=fetch, args=(c,)) for c in clients]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert time.monotonic() - started >= 2 * window - 0.2
    assert [len(set(ids)) for ids in results.values()] == [651, 651]
    assert 429 not in statuses(sim) and sum(c.rate_limit_waits for c in clients) == 0
    assert len(sim.request_log) == 14 and sim.max_requests_in_window(KEY, window_seconds=1.0) <= 5
    assert any(reason == "throttled" for _, _, reason in waits)
    assert sum(c.rate_limit_wait_seconds for c in clients) > 1


def test_on_wait_can_abort_a_concurrent_fetch(make_client, sim):
    class Cancelled(Exception):
        pass

    def on_wait(until, seconds, reason):
        raise Cancelled()

    client = make_client(concurrency=3, on_wait=on_wait)
    client.limiter = SharedRateLimiter(None, f"test:{uuid.uuid4()}", 2, window_seconds=5)
    started = time.monotonic()
    with pytest.raises(Cancelled):
        list(client.fetch_patients())
    assert time.monotonic() - started < 1 and client.requests_made == 2


def test_clear_key_never_leaks(sim_server, redis_client, caplog, log_format):
    """A 401, a timeout and a 5xx: the key is in no log record, error text or limiter entry."""
    key = "MS0xLTExMjM0NTY3LXNlY3JldC1rZXk-au4"
    sim = sim_server.simulator
    for name in ("urllib3", "requests", "rq", "routiq_admin"):
        caplog.set_level(logging.DEBUG, logger=name)
    errors = []

    def client(**kwargs):
        return ClinikoClient(
            key,
            base_url=sim_server.base_url,
            user_agent=UA,
            redis=redis_client,
            backoff_factor=0.01,
            retries=1,
            **kwargs,
        )

    assert client().get_user()
    for fault, params, kwargs in (
        ("timeout", {"seconds": 2}, {"timeout": 0.3}),
        ("server_error", {"status": 503}, {}),
    ):
        sim.inject(fault, count=2, **params)
        with pytest.raises(ApiConnectionFailed) as err:
            client(**kwargs).get_user()
        errors.append(err.value)
    sim.revoke_key(key)
    with pytest.raises(InvalidCredentials) as err:
        client().get_user()
    errors.append(err.value)
    assert [e.error_code for e in errors] == [
        "CLINIKO_API_TIMEOUT",
        "CLINIKO_API_UNAVAILABLE",
        "CLINIKO_UNAUTHORIZED",
    ]

    assert caplog.records
    for record in caplog.records:
        assert key not in record.getMessage() and key not in repr(record.args)
        assert key not in (record.exc_text or "")
    assert_logs_clean(caplog, log_format, key)
    for e in errors:
        chain = [e, e.__cause__, e.__context__]
        assert not any(key in str(x) or key in repr(x) or key in repr(getattr(x, "args", "")) for x in chain)
        assert key not in repr(e.details())
    redis_keys = list(redis_client.scan_iter())
    assert redis_keys
    for rkey in redis_keys:
        assert key.encode() not in rkey
        assert not any(key.encode() in m for m in redis_client.zrange(rkey, 0, -1))


def test_prefetched_streams_fetch_their_first_pages_before_anyone_iterates(make_client, sim):
    from tests.conftest import wait_for

    client = make_client()
    streams = [client.prefetch(client.fetch_businesses()), client.prefetch(client.fetch_practitioners())]
    streams.append(client.prefetch(client.fetch_patients()))
    wait_for(lambda: client.requests_made == 3, message="three first pages in flight together")
    assert [len(records(s)) for s in streams] == [2, 3, 651]
    assert client.requests_made == 9 and client._held == 0


def test_a_prefetched_page_not_yet_taken_narrows_the_others_paging(make_client, sim):
    client = make_client(concurrency=2)
    ahead = client.prefetch(client.fetch_appointments())
    pages = client.iter_pages("patients", filters=["archived_at:*"], per_page=50)  # 14 pages
    next(pages)
    next(pages)
    time.sleep(0.3)  # a slow consumer: with one page held ahead, one more page may be out
    assert client.requests_made <= 4  # the prefetch, page 1, page 2, one submitted when it was taken
    assert len(list(pages)) == 12
    assert len(records(ahead)) == 296 and client._held == 0


def test_closing_an_unconsumed_prefetch_stops_it(make_client, sim):
    client = make_client(concurrency=2)
    ahead = client.prefetch(client.iter_pages("patients", per_page=20))  # 33 pages
    from tests.conftest import wait_for

    wait_for(lambda: client.requests_made == 1, message="the first page")
    ahead.close()
    time.sleep(0.2)
    assert client.requests_made == 1 and client._held == 0


def test_a_wait_in_a_prefetch_is_reported_in_the_consumers_thread(make_client, sim):
    threads = []
    client = make_client(on_wait=lambda until, seconds, reason: threads.append(threading.current_thread()))
    client.limiter = SharedRateLimiter(None, f"test:{uuid.uuid4()}", 1, window_seconds=2.5)
    first = client.prefetch(client.fetch_businesses())
    second = client.prefetch(client.fetch_appointment_types())  # waits ~2.5 s for a slot
    assert len(records(first)) == 2 and len(records(second)) == 6
    assert threads and set(threads) == {threading.current_thread()}
