"""The Simulator WSGI app: accounts, auth, routing, request log, hooks and the /_sim control API."""

from __future__ import annotations

import base64
import collections
import json
import threading
import time
import traceback

from werkzeug.http import http_date
from werkzeug.wrappers import Request, Response

from .account import Account
from .faults import FaultsMixin
from .spec import RESOURCES, UA_EMAIL_RE, URL_RE, ApiError, shard_of
from .store import DAY, _to_ts


class Simulator(FaultsMixin):
    """In-memory fake Cliniko; a WSGI app (call it with environ, start_response)."""

    def __init__(
        self,
        patients=651,
        appointments=296,
        seed=1,
        keys=None,
        latency_ms=0,
        rate_limit_per_minute=200,
        *,
        now=None,
    ):
        # now: fixes the simulated clock (datetime or epoch) - data is then reproducible anywhere;
        # by default generated data ends at today's 00:00 UTC and the clock is real time.
        self.n_patients, self.n_appointments, self.seed = int(patients), int(appointments), seed
        self.keys = None if keys is None else set(keys)
        self.latency_ms = latency_ms
        self.rate_limit_per_minute = rate_limit_per_minute
        self.rate_limit_window = 60.0  # seconds; tests may shrink it
        if now is None:
            self._offset = 0.0
            self.anchor = int(time.time()) // DAY * DAY
        else:
            self.anchor = _to_ts(now)
            self._offset = self.anchor - time.time()
        self._lock = threading.RLock()
        self._accounts = {}
        self._revoked = set()
        self._faults = []
        self._hooks = []
        self._windows = collections.defaultdict(collections.deque)
        self.request_log = []
        self.hook_errors = []

    def clock(self):
        """Simulated wall clock (Unix seconds)."""
        return time.time() + self._offset

    def account(self, api_key):
        """The account for a key, created on first use."""
        with self._lock:
            acc = self._accounts.get(api_key)
            if acc is None:
                acc = self._accounts[api_key] = Account(self, api_key)
            return acc

    def revoke_key(self, api_key):
        """Make a key answer 401 from now on."""
        with self._lock:
            self._revoked.add(api_key)

    def add_hook(self, fn):
        """Call fn(api_key, path, query_string, status) after each API request, before the
        response is sent (path is the full request path, e.g. "/au1/v1/patients")."""
        self._hooks.append(fn)

    def reset_stats(self):
        """Empty request_log (rate-limit windows are kept: see reset_rate_limits)."""
        with self._lock:
            self.request_log.clear()
            self.hook_errors.clear()

    # ---- HTTP ---------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ)
        if request.path == "/_sim" or request.path.startswith("/_sim/"):
            response = self._control(request)
        else:
            response = self._api(request)
        return response(environ, start_response)

    def _json(self, body, status=200, headers=None):
        r = Response(json.dumps(body), status=status, mimetype="application/json", headers=headers)
        r.headers["Date"] = http_date(self.clock())
        return r

    def _text(self, text, status, mimetype="text/plain", headers=None):
        r = Response(text, status=status, mimetype=mimetype, headers=headers)
        r.headers["Date"] = http_date(self.clock())
        return r

    def _api_key(self, request):
        auth = request.headers.get("Authorization", "")
        scheme, _, data = auth.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user = base64.b64decode(data.strip(), validate=True).decode("utf-8").partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return None
        return user or None

    def _api(self, request):
        mono, wall = time.monotonic(), time.time()
        path, query = request.path, request.query_string.decode("latin-1")
        key = self._api_key(request)
        try:
            response = self._serve(request, key)
        except Exception:  # a simulator bug must still answer, like a real 500
            traceback.print_exc()
            response = self._json({"message": "Internal Server Error"}, 500)
        with self._lock:
            self.request_log.append(
                (mono, wall, key, request.method, path + ("?" + query if query else ""), response.status_code)
            )
        for fn in list(self._hooks):
            try:
                fn(key, path, query, response.status_code)
            except Exception as e:  # reported through hook_errors, never to the client
                self.hook_errors.append(e)
                traceback.print_exc()
        return response

    def _serve(self, request, key):
        m = URL_RE.match(request.path)
        if not m:
            return self._json({"message": "Not found"}, 404)
        shard, sub = m.group(1), (m.group(2) or "/")
        if self.latency_ms:  # network + server time: every answer is slow, errors included
            time.sleep(self.latency_ms / 1000.0)
        with self._lock:
            if (
                key is None
                or key in self._revoked
                or (self.keys is not None and key not in self.keys)
                or shard_of(key) != shard  # a key sent to another shard is unknown there
            ):
                realm = {"WWW-Authenticate": 'Basic realm="Application"'}
                return self._text("HTTP Basic: Access denied.", 401, headers=realm)
        if not UA_EMAIL_RE.search(request.headers.get("User-Agent", "")):
            return self._text("", 403)
        accept = request.headers.get("Accept", "")
        if accept and "json" not in accept and "*/*" not in accept:
            return self._json({"message": "Not acceptable"}, 406)
        with self._lock:
            acc = self.account(key)
            limited = self._limited(key)
            if limited is not None:
                return self._too_many(limited)
            delay, fault = self._take_faults(key, request.path)
            if fault is not None and fault.kind == "rate_limit":
                return self._too_many(time.time() + float(fault.params.get("reset_seconds", 1)))
            self._windows[key].append(time.monotonic())
        if fault is not None and fault.kind == "timeout":
            delay += float(fault.params.get("seconds", 10))
        if delay > 0:
            time.sleep(delay)
        if fault is not None and fault.kind == "server_error":
            status = int(fault.params.get("status", 500))
            if status == 500:
                return self._json({"message": "Internal Server Error"}, 500)
            return self._text(f"<html><body><h1>{status} error</h1></body></html>", status, "text/html")
        if fault is not None and fault.kind == "malformed_json":
            return self._text('{"patients": [{"id": "1", "first_name": "Trunc', 200, "application/json")
        if fault is not None and fault.kind == "wrong_shape":
            return self._json({"unexpected": True})
        if request.method != "GET":
            return self._json({"message": "Method not allowed"}, 405, headers={"Allow": "GET"})
        base = f"{request.host_url.rstrip('/')}/{shard}/v1"
        parts = sub.strip("/").split("/")
        try:
            with self._lock:
                acc.base_url = base
                if parts == ["user"]:
                    return self._json(acc._render_user(base))
                if len(parts) == 1 and parts[0] in RESOURCES:
                    inactive = False if parts[0] == "practitioners" else None
                    return self._json(acc.list_page(parts[0], request.args, base, parts[0], inactive))
                if parts == ["practitioners", "inactive"]:
                    return self._json(
                        acc.list_page("practitioners", request.args, base, "practitioners/inactive", True)
                    )
                if len(parts) == 2 and parts[0] in RESOURCES:
                    return self._json(acc.fetch(parts[0], parts[1], request.args, base))
        except ApiError as e:
            return self._json(e.body, e.status)
        return self._json({"message": "Not found"}, 404)

    def _control(self, request):
        parts = request.path.strip("/").split("/")[1:]
        body = request.get_json(silent=True) or {}
        method = request.method
        try:
            if parts == ["faults"] and method == "POST":
                body = dict(body)
                kind = body.pop("fault")
                count = body.pop("count", 1)
                self.inject(
                    kind,
                    count,
                    path=body.pop("path", None),
                    key=body.pop("key", None),
                    after=body.pop("after", 0),
                    **body,
                )
                return self._json({"ok": True}, 201)
            if parts == ["faults"] and method == "DELETE":
                self.clear_faults()
                return self._json({"ok": True})
            if parts == ["stats"] and method == "GET":
                key = request.args.get("key")
                with self._lock:
                    log = [e for e in self.request_log if key is None or e[2] == key]
                by_status = collections.Counter(str(e[5]) for e in log)
                return self._json(
                    {
                        "requests": len(log),
                        "by_status": by_status,
                        "max_per_minute": self.max_requests_in_window(key, 60),
                    }
                )
            if parts == ["stats"] and method == "DELETE":
                self.reset_stats()
                return self._json({"ok": True})
            if parts == ["rate_limit"] and method == "POST":
                self.set_rate_limit(body.get("per_minute"))
                return self._json({"ok": True, "per_minute": self.rate_limit_per_minute})
            if len(parts) >= 2 and parts[0] == "accounts":
                return self._control_account(request, parts[1], parts[2:], body)
        except (KeyError, IndexError) as e:
            return self._json({"message": f"Not found: {e}"}, 404)
        except (ValueError, TypeError) as e:
            return self._json({"message": f"Bad request: {e}"}, 400)
        return self._json({"message": "Not found"}, 404)

    def _control_account(self, request, key, rest, body):
        acc = self.account(key)
        method = request.method
        with self._lock:
            acc.base_url = f"{request.host_url.rstrip('/')}/{acc.shard}/v1"
        if rest == [] and method == "GET":
            return self._json(
                {
                    "key": key,
                    "shard": acc.shard,
                    "user": acc.user,
                    "counts": {r: acc.count(r) for r in RESOURCES},
                }
            )
        if rest == ["revoke"] and method == "POST":
            self.revoke_key(key)
            return self._json({"ok": True})
        names = {
            "patients": "patient",
            "appointments": "appointment",
            "individual_appointments": "appointment",
        }
        if not rest or rest[0] not in names:
            raise KeyError(request.path)
        noun = names[rest[0]]
        if len(rest) == 1 and method == "POST":
            return self._json(getattr(acc, f"add_{noun}")(**body), 201)
        if len(rest) == 2 and method == "PATCH":
            return self._json(getattr(acc, f"update_{noun}")(rest[1], **body))
        if len(rest) == 3 and method == "POST" and rest[2] in ("archive", "cancel"):
            if rest[2] == "cancel" and noun != "appointment":
                raise KeyError(request.path)
            return self._json(getattr(acc, f"{rest[2]}_{noun}")(rest[1], **body))
        raise KeyError(request.path)
