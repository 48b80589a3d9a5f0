"""A small Python client for the Routiq Admin API: the guide's methods plus start, cancel and wait.

client = RoutiqClient("https://routiq.example.com", token, org_id)
run = client.start_sync("comprehensive")
final = client.wait(run["sync_id"], on_progress=lambda p: print(p["progress_percentage"]))
for patient in client.patients(activity="active"):  # a token with the patients:read scope
    print(patient["cliniko_id"], patient["display_name"])
"""

import time

import requests

from .sync.plan import FINISHED_STATUSES


class RoutiqError(Exception):
    """An API error, carrying the envelope's details (error_type, error_code, retry_after)."""

    def __init__(self, status, body):
        details = (body or {}).get("details") or {}
        self.status = status
        self.error = (body or {}).get("error")
        self.error_type = details.get("error_type")
        self.error_code = details.get("error_code")
        self.retry_after = details.get("retry_after")
        self.details = details
        super().__init__(f"HTTP {status}: {details.get('message') or self.error or 'request failed'}")


class RoutiqClient:
    """Calls the sync API with a bearer token; `org_id` is sent as X-Organization-ID and used in paths."""

    def __init__(self, base_url, token, org_id=None, *, timeout=30.0, session=None):
        self.base_url = base_url.rstrip("/")
        self.org_id = org_id
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        if org_id:
            self.session.headers["X-Organization-ID"] = org_id

    def _call(self, method, path, **params):
        params = {
            k: ("true" if v is True else "false" if v is False else v)
            for k, v in params.items()
            if v is not None
        }
        response = self.session.request(method, self.base_url + path, params=params, timeout=self.timeout)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            raise RoutiqError(response.status_code, body)
        return body

    def _org(self, org_id):
        org_id = org_id or self.org_id
        if not org_id:
            raise ValueError("pass org_id here or to RoutiqClient")
        return org_id

    # The guide's RoutiqSyncClient methods.
    def trigger_sync(self, mode=None, full=None, org_id=None):
        """POST /api/v1/cliniko/sync/{org}: start a Cliniko sync (default comprehensive)."""
        return self._call("POST", f"/api/v1/cliniko/sync/{self._org(org_id)}", mode=mode, full=full)

    def get_sync_status(self):
        """GET /api/v1/sync/scheduler/status for the client's organization."""
        return self._call("GET", "/api/v1/sync/scheduler/status")

    def wait_for_sync_completion(self, sync_id, timeout=600):
        """Wait until the run finishes and return its final progress (TimeoutError after `timeout` s)."""
        return self.wait(sync_id, timeout=timeout)

    # The rest of the API.
    def start_sync(self, mode="active", full=None, org_id=None):
        """POST /api/v1/sync/start/{org}: start a sync with progress tracking; returns sync_id and more."""
        return self._call("POST", f"/api/v1/sync/start/{self._org(org_id)}", sync_mode=mode, full=full)

    def trigger_manual_sync(self, mode=None, full=None):
        """POST /api/v1/sync/trigger for the client's organization."""
        return self._call("POST", "/api/v1/sync/trigger", sync_mode=mode, full=full)

    def trigger_scheduled_sync(self):
        """POST /api/v1/sync/scheduler/trigger for the client's organization."""
        return self._call("POST", "/api/v1/sync/scheduler/trigger")

    def import_patients(self, org_id=None):
        """POST /api/v1/cliniko/import-patients/{org}; returns import_id (poll it like a sync_id)."""
        return self._call("POST", f"/api/v1/cliniko/import-patients/{self._org(org_id)}")

    def progress(self, sync_id):
        """GET /api/v1/sync/progress/{sync_id}."""
        return self._call("GET", f"/api/v1/sync/progress/{sync_id}")

    def run(self, sync_id):
        """GET /api/v1/sync/runs/{sync_id}: the run with counts per entity and Cliniko request figures."""
        return self._call("GET", f"/api/v1/sync/runs/{sync_id}")

    def cancel(self, sync_id):
        """POST /api/v1/sync/cancel/{sync_id}."""
        return self._call("POST", f"/api/v1/sync/cancel/{sync_id}")

    def history(self, limit=None, offset=None, status=None, org_id=None):
        """GET /api/v1/sync/history/{org}."""
        return self._call(
            "GET", f"/api/v1/sync/history/{self._org(org_id)}", limit=limit, offset=offset, status=status
        )

    def cleanup(self):
        """POST /api/v1/sync/cleanup."""
        return self._call("POST", "/api/v1/sync/cleanup")

    def cliniko_status(self, org_id=None):
        """GET /api/v1/cliniko/status/{org}."""
        return self._call("GET", f"/api/v1/cliniko/status/{self._org(org_id)}")

    def test_connection(self, org_id=None):
        """GET /api/v1/cliniko/test-connection/{org}."""
        return self._call("GET", f"/api/v1/cliniko/test-connection/{self._org(org_id)}")

    # The synced data (needs a token with the patients:read scope).
    def summary(self, org_id=None):
        """GET /api/v1/organizations/{org}/summary: patient and appointment counts, freshness."""
        return self._call("GET", f"/api/v1/organizations/{self._org(org_id)}/summary")

    def patients(self, activity=None, q=None, updated_since=None, archived=None, limit=None, org_id=None):
        """Iterate over every matching patient, fetching page after page (keyset cursors).

        `updated_since` is an aware datetime or ISO 8601 text; pass the time your previous pull
        started to get only what changed since.
        """
        return self._iterate(
            f"/api/v1/organizations/{self._org(org_id)}/patients",
            activity=activity,
            q=q,
            updated_since=_when(updated_since),
            archived=archived,
            limit=limit,
        )

    def appointments(
        self, start=None, end=None, status=None, patient_id=None, updated_since=None, limit=None, org_id=None
    ):
        """Iterate over every matching appointment (`start` ≤ starts_at < `end`), page after page."""
        return self._iterate(
            f"/api/v1/organizations/{self._org(org_id)}/appointments",
            **{"from": _when(start), "to": _when(end)},
            status=status,
            patient_id=patient_id,
            updated_since=_when(updated_since),
            limit=limit,
        )

    def _iterate(self, path, **params):
        cursor = None
        while True:
            page = self._call("GET", path, **params, cursor=cursor)
            yield from page["data"]
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def wait(self, sync_id, timeout=600, poll_interval=2.0, on_progress=None):
        """Poll progress until the run is completed, failed or cancelled; return the final progress.

        `on_progress(progress)` is called with every poll's body; a 429 waits its retry_after.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                data = self.progress(sync_id)
            except RoutiqError as exc:
                if exc.status != 429:
                    raise
                delay = float(exc.retry_after or poll_interval)
            else:
                if on_progress is not None:
                    on_progress(data)
                if data["status"] in FINISHED_STATUSES:
                    return data
                delay = poll_interval
            if time.monotonic() + delay > deadline:
                raise TimeoutError(f"Sync {sync_id} did not finish within {timeout} s")
            time.sleep(delay)


def _when(value):
    """Return a datetime or date as ISO 8601 text (text passes through)."""
    return value.isoformat() if hasattr(value, "isoformat") else value
