"""HTTP client for the Cliniko REST API: auth, shared rate limit, retries, paging, typed errors."""

import email.utils
import hashlib
import logging
import math
import random
import threading
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError

from .errors import (
    ApiConnectionFailed,
    ClinikoError,
    CredentialsNotFound,
    InvalidCredentials,
    InvalidDataFormat,
    RateLimitExceeded,
)
from .keys import shard_from_key
from .paging import Page, Prefetch, Stopped, concurrent_pages
from .ratelimit import SharedRateLimiter

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.{shard}.cliniko.com/v1"
DEFAULT_USER_AGENT = "Routiq Admin (ops@example.com)"
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
MAX_PER_PAGE = 100
MAX_IDS_PER_REQUEST = 100
MAX_RATE_LIMIT_RETRIES = 10
MAX_BACKOFF_SECONDS = 30.0
# A 429 without usable headers: Cliniko's window is a minute. A larger computed wait means a
# skewed clock or a bad header, and must not park a job for hours.
DEFAULT_RATE_LIMIT_WAIT = 60.0
MAX_RATE_LIMIT_WAIT = 120.0
# Slots are held a little longer than Cliniko's minute: a request reaches Cliniko a few ms after
# it took its slot, and that jitter must never fit limit + 1 requests into one of its windows.
LIMITER_WINDOW_SECONDS = 61.0


def key_digest(api_key):
    """Return the identity a key is rate-limited by when its Cliniko user is unknown."""
    return "key:" + hashlib.sha256(api_key.encode()).hexdigest()


class ClinikoClient:
    """One Cliniko key's session: every call limited, retried and mapped to a typed error."""

    def __init__(
        self,
        api_key,
        *,
        base_url=DEFAULT_BASE_URL,
        user_agent=DEFAULT_USER_AGENT,
        redis=None,
        rate_limit_per_minute=200,
        limiter_key=None,
        wait_on_rate_limit=True,
        on_wait=None,
        on_retry=None,
        timeout=30.0,
        retries=4,
        backoff_factor=0.5,
        concurrency=4,
    ):
        api_key = (api_key or "").strip()
        if not api_key:
            raise CredentialsNotFound()
        self.shard = shard_from_key(api_key)
        self.base_url = base_url.replace("{shard}", self.shard).rstrip("/")
        self.wait_on_rate_limit = wait_on_rate_limit
        self.on_wait = on_wait
        # on_retry(status or None, attempt, retries, delay, error): may be called from page threads.
        self.on_retry = on_retry
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff_factor = backoff_factor
        self.concurrency = max(1, int(concurrency))
        self.limiter = SharedRateLimiter(
            redis,
            limiter_key or key_digest(api_key),
            rate_limit_per_minute,
            window_seconds=LIMITER_WINDOW_SECONDS,
        )
        self.requests_made = 0
        self.rate_limit_waits = 0
        self.rate_limit_wait_seconds = 0.0
        self._lock = threading.Lock()
        # First pages fetched ahead (prefetch) and not yet taken: they count against `concurrency`.
        self._held = 0
        # A prefetch thread routes its waits to the caller and stops with its stream.
        self._local = threading.local()
        self.session = requests.Session()
        self.session.auth = (api_key, "")
        self.session.headers.update({"Accept": "application/json", "User-Agent": user_agent})
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.concurrency + 1, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    @classmethod
    def from_config(cls, api_key, config, **kwargs):
        """Build a client from the app config (CLINIKO_* settings); kwargs win."""
        settings = {
            "base_url": config.get("CLINIKO_BASE_URL") or DEFAULT_BASE_URL,
            "user_agent": config.get("CLINIKO_USER_AGENT") or DEFAULT_USER_AGENT,
            "rate_limit_per_minute": int(config.get("CLINIKO_RATE_LIMIT_PER_MINUTE") or 200),
            "timeout": float(config.get("CLINIKO_TIMEOUT_SECONDS") or 30.0),
        }
        return cls(api_key, **{**settings, **kwargs})

    def __repr__(self):
        return f"<ClinikoClient {self.base_url}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Release the pooled connections."""
        self.session.close()

    # -- resources -------------------------------------------------------------------------

    def get_user(self):
        """Return the key's own Cliniko user (GET /user)."""
        body = self._json(self._get(self._url("user")), "user")
        if not isinstance(body, dict) or not body.get("id"):
            raise InvalidDataFormat("Cliniko returned an unexpected body for /user")
        return body

    def test_connection(self):
        """Call GET /user and time it."""
        started = time.monotonic()
        user = self.get_user()
        return {"user": user, "response_time_ms": round((time.monotonic() - started) * 1000)}

    def fetch_patients(self, *, updated_since=None, include_archived=True, ids=None):
        """Stream pages of patients: all, changed since a mark, and/or by id (100 per request)."""
        filters, sort = _incremental(updated_since)
        if include_archived:
            filters.append("archived_at:*")
        if ids is None:
            return self.iter_pages("patients", filters=filters, sort=sort)
        return self._iter_id_batches("patients", ids, filters, sort)

    def fetch_appointments(
        self,
        *,
        updated_since=None,
        starts_from=None,
        starts_to=None,
        include_archived=True,
        include_cancelled=True,
    ):
        """Stream pages of individual appointments, by mark and/or by a starts_at window."""
        filters, sort = _incremental(updated_since)
        if starts_from is not None:
            filters.append(f"starts_at:>={_utc(starts_from)}")
        if starts_to is not None:
            filters.append(f"starts_at:<{_utc(starts_to, round_up=True)}")
        if include_archived:
            filters.append("archived_at:*")
        if include_cancelled:
            filters.append("cancelled_at:*")
        return self.iter_pages("individual_appointments", filters=filters, sort=sort)

    def fetch_practitioners(self, *, inactive=False):
        """Stream pages of active (or inactive) practitioners."""
        return self.iter_pages("practitioners/inactive" if inactive else "practitioners")

    def fetch_appointment_types(self):
        """Stream pages of appointment types, archived included."""
        return self.iter_pages("appointment_types", filters=["archived_at:*"])

    def fetch_businesses(self):
        """Stream pages of businesses, archived included."""
        return self.iter_pages("businesses", filters=["archived_at:*"])

    def prefetch(self, pages):
        """Start fetching a page stream's first page now, in the background; return the stream.

        Several prefetched streams travel together (one round trip for all their first
        pages); each first page not yet taken narrows the concurrent paging of the others, so
        fetched-but-unconsumed pages stay within `concurrency`. Close it if it is not consumed.
        """
        return Prefetch(self, pages)

    def _iter_id_batches(self, resource, ids, filters, sort):
        ids = list(dict.fromkeys(str(i) for i in ids))
        bad = [i for i in ids if not i.isdigit()]
        if bad:
            raise ValueError(f"Cliniko ids are digit strings, got {bad[:3]!r}")

        def batches():
            for start in range(0, len(ids), MAX_IDS_PER_REQUEST):
                chunk = ids[start : start + MAX_IDS_PER_REQUEST]
                yield from self.iter_pages(resource, filters=[*filters, "id:=" + ",".join(chunk)], sort=sort)

        return batches()

    # -- paging ----------------------------------------------------------------------------

    def iter_pages(self, resource, *, filters=(), sort=None, per_page=MAX_PER_PAGE):
        """Yield every page of a list resource; after page 1, fetch the rest concurrently."""
        params = [("per_page", max(1, min(MAX_PER_PAGE, int(per_page))))]
        params += [("q[]", f) for f in filters]
        if sort:
            params.append(("sort", sort))
        page, next_link, self_link = self._fetch_page(self._url(resource), params, resource)
        yield page
        seen = {page.number}
        if next_link and self.concurrency > 1 and page.records:
            # Page 1 was full (it has a next link), so its length is the server's page size.
            last = math.ceil(page.total_entries / len(page.records))
            # Cliniko documents that `next` keeps the query (filters, sort, per_page).
            template = self._absolute(next_link or self_link)
            next_link = None
            with closing(concurrent_pages(self, resource, template, range(2, last + 1))) as pages:
                for page, link in pages:
                    seen.add(page.number)
                    if page.number == last:
                        next_link = link  # the set grew while paging: go on by links
                    yield page
        while next_link:
            page, next_link, _ = self._fetch_page(self._absolute(next_link), None, resource)
            if page.number in seen:
                raise InvalidDataFormat(f"Cliniko paging for {resource} looped back to page {page.number}")
            seen.add(page.number)
            yield page

    def _width(self):
        """How many pages this stream may have in flight beside other streams' prefetched ones."""
        return max(1, self.concurrency - self._held)

    def _fetch_page(self, url, params, resource, *, notify=None, stop=None):
        """GET one list page; return (Page, next link, self link)."""
        response = self._get(url, params, notify=notify, stop=stop)
        body = self._json(response, resource)
        key = resource.split("/")[0]
        records = body.get(key) if isinstance(body, dict) else None
        total = body.get("total_entries") if isinstance(body, dict) else None
        links = (body.get("links") if isinstance(body, dict) else None) or {}
        if (
            not isinstance(records, list)
            or not isinstance(total, int)
            or isinstance(total, bool)
            or total < 0
            or not isinstance(links, dict)
        ):
            raise InvalidDataFormat(f"Cliniko returned an unexpected page shape for {resource}")
        query = dict(parse_qsl(urlsplit(response.url).query))
        try:
            number = int(query.get("page", 1))
        except ValueError:
            number = 1
        page = Page(records, total, number, _http_date(response.headers.get("Date")))
        return page, links.get("next"), links.get("self")

    # -- HTTP ------------------------------------------------------------------------------

    def _url(self, path):
        return f"{self.base_url}/{path.lstrip('/')}"

    def _absolute(self, link):
        """Resolve a link from a body against our base URL; the key only ever goes to our host."""
        parts = urlsplit(urljoin(self.base_url + "/", link))
        base = urlsplit(self.base_url)
        if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
            log.debug("Rebasing Cliniko link from %s to %s", parts.netloc, base.netloc)
            parts = parts._replace(scheme=base.scheme, netloc=base.netloc)
        return urlunsplit(parts)

    def _get(self, url, params=None, *, notify=None, stop=None):
        """GET under the shared limit with bounded retries; return a 2xx/3xx response or raise."""
        path = urlsplit(url).path
        notify = notify or getattr(self._local, "notify", None)
        stop = stop or getattr(self._local, "stop", None)
        failures = rate_limited = 0
        while True:
            self._take_slot(notify, stop)
            with self._lock:
                self.requests_made += 1
            started = time.monotonic()
            retry_after = status = None
            try:
                response = self.session.get(url, params=params, timeout=self.timeout)
            except requests.RequestException as exc:
                error, retryable = self._transport_error(exc, path)
                if not retryable:
                    raise error from exc
            else:
                status = response.status_code
                log.debug("GET %s -> %s (%.0f ms)", response.url, status, (time.monotonic() - started) * 1000)
                if status < 400:
                    return response
                if status == 429:
                    wait = _rate_limit_wait(response)
                    if not self.wait_on_rate_limit or rate_limited >= MAX_RATE_LIMIT_RETRIES:
                        raise RateLimitExceeded(wait)
                    rate_limited += 1
                    with self._lock:
                        self.rate_limit_waits += 1
                    log.info("Cliniko rate limit reached on %s; waiting %.1f s", path, wait)
                    self._sleep(wait, "rate_limited", notify, stop)
                    continue
                if status in (401, 403):
                    raise InvalidCredentials(status)
                if status not in TRANSIENT_STATUSES:
                    raise ClinikoError(
                        f"Cliniko answered {status} {response.reason} for {path}{_detail(response)}",
                        status=status,
                    )
                error = ApiConnectionFailed(f"Cliniko API unavailable ({status} on {path})", status=status)
                retry_after = _seconds(response.headers.get("Retry-After"))
            if failures >= self.retries:
                if failures:
                    error.message = f"{error.message}; gave up after {failures + 1} attempts"
                    error.args = (error.message,)
                raise error
            failures += 1
            delay = min(MAX_BACKOFF_SECONDS, self.backoff_factor * 2 ** (failures - 1))
            delay = max(random.uniform(delay / 2, delay), min(retry_after or 0, MAX_BACKOFF_SECONDS))
            log.info(
                "Cliniko request failed (%s); retry %d/%d in %.2f s",
                error.message,
                failures,
                self.retries,
                delay,
            )
            if self.on_retry is not None:
                self.on_retry(status, failures, self.retries, delay, error)
            self._pause(delay, stop)

    def _transport_error(self, exc, path):
        """Map a requests exception to (typed error, retryable)."""
        name = type(exc).__name__
        if isinstance(exc, requests.Timeout) or any(isinstance(a, Urllib3TimeoutError) for a in exc.args):
            message = f"Timed out waiting for Cliniko API after {self.timeout:g} s ({path})"
            return ApiConnectionFailed(message, timeout=True), True
        if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
            return ApiConnectionFailed(f"Unable to connect to Cliniko API ({name} on {path})"), True
        return ApiConnectionFailed(f"Request to Cliniko API failed ({name} on {path})"), False

    def _json(self, response, what):
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type")
            raise InvalidDataFormat(f"Cliniko returned a body that is not JSON for {what} ({kind})") from None

    # -- waiting ---------------------------------------------------------------------------

    def _take_slot(self, notify, stop):
        """Take a slot from the shared limiter, sleeping while it says wait (if allowed)."""
        while (wait := self.limiter.acquire()) > 0:
            if not self.wait_on_rate_limit:
                raise RateLimitExceeded(
                    wait, f"Cliniko request budget for this account is spent; retry in {math.ceil(wait)} s"
                )
            self._sleep(wait, "throttled", notify, stop)

    def _sleep(self, seconds, reason, notify, stop):
        if seconds >= 1:
            (notify or self._notify)(datetime.now(UTC) + timedelta(seconds=seconds), seconds, reason)
        self._pause(seconds, stop)
        with self._lock:
            self.rate_limit_wait_seconds += seconds

    def _notify(self, until, seconds, reason):
        if self.on_wait is not None:
            self.on_wait(until, seconds, reason)

    @staticmethod
    def _pause(seconds, stop):
        if stop is None:
            time.sleep(seconds)
        elif stop.wait(seconds):
            raise Stopped()


def _utc(value, *, round_up=False):
    """Format an aware datetime as Cliniko's filter timestamp (UTC, whole seconds, Z)."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"expected an aware datetime, got {value!r}")
    value = value.astimezone(UTC)
    if round_up and value.microsecond:
        value += timedelta(microseconds=1_000_000 - value.microsecond)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _incremental(updated_since):
    """Return (filters, sort) for an optional high-water mark."""
    if updated_since is None:
        return [], None
    return [f"updated_at:>={_utc(updated_since)}"], "updated_at:asc"


def _http_date(value):
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _seconds(value):
    """Parse a Retry-After value (seconds or an HTTP date) into seconds from now, or None."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        when = _http_date(value)
        return (when - datetime.now(UTC)).total_seconds() if when else None


def _rate_limit_wait(response):
    """Seconds to wait after a 429: Retry-After, else X-RateLimit-Reset (Unix time); at least 1."""
    wait = _seconds(response.headers.get("Retry-After"))
    if wait is None:
        try:
            wait = float(response.headers["X-RateLimit-Reset"]) - time.time()
        except (KeyError, ValueError):
            wait = DEFAULT_RATE_LIMIT_WAIT
    return min(MAX_RATE_LIMIT_WAIT, max(1.0, wait))


def _detail(response):
    """A short reason from an error body (Cliniko's `message`), if it has one."""
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        return ""
    return f": {str(message)[:200]}" if message else ""
