"""Open event streams: each holds one of the process's threads for as long as its reply lasts.

Under gunicorn's gthread worker, so does a form post without JavaScript, which waits for its reply. They
are counted per user and per client address (429 past MAX_OPEN_STREAMS, MAX_OPEN_STREAMS_PER_IP), and in
the whole process (503 past MAX_OPEN_STREAMS_PER_PROCESS, which is below GUNICORN_THREADS): however many
addresses open streams, page views, health checks and log-ins still find a thread. Counted per process,
since the threads are.
"""

import threading
from contextlib import contextmanager

from flask import current_app

from .answers import Busy, Refused
from .rates import client_ip

# The process's count of open streams, beside each user's and each address's.
PROCESS = "process"


class OpenStreams:
    """Event streams (and other requests waiting on a reply) open in this process: per user, per client
    address, and in all. The per-user and per-address counts follow RATELIMIT_ENABLED; the process's is
    always on, since it keeps the process answering rather than sharing a budget."""

    def __init__(self, per_user, per_ip, per_process, enabled=True):
        self.per_user, self.per_ip, self.per_process, self.enabled = per_user, per_ip, per_process, enabled
        self._open = {}
        self._lock = threading.Lock()

    def open(self, uid=None, ip=None):
        """Count one more; return (the keys to close() it with, None), or (None, the key at its limit)."""
        limits = [(PROCESS, self.per_process)]
        if self.enabled:
            limits += [(f"user:{uid}", self.per_user)] if uid else []
            limits += [(f"ip:{ip}", self.per_ip)] if ip else []
        with self._lock:
            for key, limit in limits:
                if self._open.get(key, 0) >= limit:
                    return None, key
            for key, _ in limits:
                self._open[key] = self._open.get(key, 0) + 1
        return [key for key, _ in limits], None

    def close(self, keys):
        """One counted by open() ended."""
        with self._lock:
            for key in keys:
                self._open[key] -= 1
                if not self._open[key]:
                    del self._open[key]


def _open_streams():
    return current_app.extensions["open_streams"]


def open_stream(uid):
    """Count an event stream of uid from this client; return what ends the count (it needs no request).

    429 when the user or the address has too many open, 503 when the process has: either answer comes at
    once, and the page's EventSource tries again later by itself.
    """
    streams = _open_streams()
    keys, full = streams.open(uid, client_ip())
    if full == PROCESS:
        raise Busy("This server is holding as many live replies as it can. Your reply goes on; retry shortly.", 5)
    if keys is None:
        raise Refused("Too many replies are open in other tabs or windows. Close some, then reload.", 10)
    return lambda: streams.close(keys)


@contextmanager
def thread_for_waiting():
    """Count a request waiting for a reply (a form post without JavaScript) among the process's open streams,
    while it waits; yield False when the process has no thread to spare (the request answers at once)."""
    streams = _open_streams()
    keys, _ = streams.open()
    try:
        yield keys is not None
    finally:
        if keys is not None:
            streams.close(keys)


def init_app(app):
    """Count the app's open streams, in this process."""
    app.extensions["open_streams"] = OpenStreams(
        app.config["MAX_OPEN_STREAMS"],
        app.config["MAX_OPEN_STREAMS_PER_IP"],
        app.config["MAX_OPEN_STREAMS_PER_PROCESS"],
        enabled=app.config["RATELIMIT_ENABLED"],
    )
