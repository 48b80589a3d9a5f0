"""A Cliniko client's page streams: the page, pages fetched concurrently, a first page fetched ahead."""

import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


@dataclass
class Page:
    records: list[dict]
    total_entries: int
    number: int
    server_time: datetime | None
    # True when the next page is already fetched: taking it will not wait on the network.
    ready_next: bool = False


class Stopped(Exception):
    """A concurrent page fetch was abandoned because its iteration ended."""


def concurrent_pages(client, resource, template, numbers):
    """Yield (page, next link) for page numbers as they complete, `concurrency` at a time."""
    events = queue.Queue()
    stop = threading.Event()
    pending = iter(numbers)

    def notify(*args):
        events.put(("wait", args))  # on_wait runs in the caller's thread, not a worker's

    def fetch(number):
        try:
            page, link, _ = client._fetch_page(
                with_page(template, number), None, resource, notify=notify, stop=stop
            )
            events.put(("page", (page, link)))
        except BaseException as exc:  # handed to the caller's thread, raised there
            events.put(("error", exc))

    pool = ThreadPoolExecutor(client.concurrency, thread_name_prefix="cliniko-page")
    try:
        in_flight = 0
        for number in pending:
            pool.submit(fetch, number)
            in_flight += 1
            if in_flight >= client._width():
                break
        while in_flight:
            kind, payload = events.get()
            if kind == "wait":
                client._notify(*payload)
                continue
            in_flight -= 1
            if kind == "error":
                raise payload
            # Keeps at most `concurrency` pages fetched but unconsumed, prefetched ones included.
            while in_flight < client._width() and (number := next(pending, None)) is not None:
                pool.submit(fetch, number)
                in_flight += 1
            payload[0].ready_next = any(kind == "page" for kind, _ in list(events.queue))
            yield payload
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


class Prefetch:
    """A page stream whose first page is fetched in a background thread (see prefetch)."""

    def __init__(self, client, pages):
        self._client, self._pages = client, pages
        self._events = queue.Queue()
        self._stop = threading.Event()
        self._holding = True
        with client._lock:
            client._held += 1
        self._thread = threading.Thread(target=self._first, name="cliniko-prefetch", daemon=True)
        self._thread.start()

    def _first(self):
        local = self._client._local
        local.notify = lambda *args: self._events.put(("wait", args))
        local.stop = self._stop
        try:
            self._events.put(("page", next(self._pages)))
        except StopIteration:
            self._events.put(("end", None))
        except BaseException as exc:  # handed to the consuming thread, raised there
            self._events.put(("error", exc))
        finally:
            local.notify = local.stop = None

    def _release(self):
        if self._holding:
            self._holding = False
            with self._client._lock:
                self._client._held -= 1

    def __iter__(self):
        try:
            while (event := self._events.get())[0] == "wait":
                self._client._notify(*event[1])  # on_wait runs in the consumer's thread
        finally:
            self._release()
        kind, payload = event
        if kind == "error":
            raise payload
        if kind == "page":
            yield payload
            yield from self._pages

    def close(self):
        """Stop fetching; a request already on the wire finishes and its page is dropped."""
        self._stop.set()
        self._release()
        if not self._thread.is_alive():
            self._pages.close()


def with_page(url, number):
    """Return `url` with its page parameter set to `number`."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "page"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("page", number)])))
