"""Open event streams and file downloads: each holds one of the process's threads while it lasts.

Under gunicorn's gthread worker, so does a form post without JavaScript, which waits for its reply, and a
file being sent (a client that reads slowly, or not at all, keeps its thread until the last byte). Streams
are counted per user and per client address (429 past MAX_OPEN_STREAMS, MAX_OPEN_STREAMS_PER_IP), downloads
per client address (429 past MAX_DOWNLOADS_PER_IP), and all of them together in the whole process (503 past
MAX_OPEN_STREAMS_PER_PROCESS, which is below GUNICORN_THREADS): however many addresses open streams or
downloads, page views, health checks and log-ins still find a thread. Counted per process, since the
threads are.
"""

import threading
from contextlib import contextmanager

from flask import current_app

from .answers import Busy, Refused
from .rates import client_ip

# The process's count of open streams and downloads, beside each user's and each address's.
PROCESS = "process"


class OpenStreams:
    """Event streams (and other requests waiting on a reply) and file downloads open in this process: streams
    per user and per client address, downloads per client address, and all of them together. The per-user
    and per-address counts follow RATELIMIT_ENABLED; the process's is always on, since it keeps the process
    answering rather than sharing a budget."""

    def __init__(self, per_user, per_ip, per_process, enabled=True, downloads_per_ip=None):
        self.per_user, self.per_ip, self.per_process, self.enabled = per_user, per_ip, per_process, enabled
        self.downloads_per_ip = downloads_per_ip
        self._open = {}
        self._lock = threading.Lock()

    def open(self, uid=None, ip=None):
        """Count one more stream; return (the keys to close() it with, None), or (None, the key at its limit)."""
        limits = []
        if self.enabled:
            limits += [(f"user:{uid}", self.per_user)] if uid else []
            limits += [(f"ip:{ip}", self.per_ip)] if ip else []
        return self._take(limits)

    def open_download(self, ip):
        """Count one more file download from ip; return what open() returns."""
        limits = [(f"download-ip:{ip}", self.downloads_per_ip)] if self.enabled and self.downloads_per_ip else []
        return self._take(limits)

    def _take(self, limits):
        """Count one more against the process and each (key, limit), all or none."""
        limits = [(PROCESS, self.per_process), *limits]
        with self._lock:
            for key, limit in limits:
                if self._open.get(key, 0) >= limit:
                    return None, key
            for key, _ in limits:
                self._open[key] = self._open.get(key, 0) + 1
        return [key for key, _ in limits], None

    def close(self, keys):
        """One counted by open() or open_download() ended."""
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


def hold_download():
    """Count a file download from this client while its body is sent; return what ends the count (it may be
    called more than once: when the last byte is sent, and when the response closes).

    429 when the address has MAX_DOWNLOADS_PER_IP being sent, 503 when the process has no thread to spare;
    either answer comes at once, before the file is read.
    """
    streams = _open_streams()
    keys, full = streams.open_download(client_ip())
    if full == PROCESS:
        raise Busy("This server is sending as many files as it can. Retry shortly.", 5)
    if keys is None:
        raise Refused("Too many files are being downloaded from your network at once. Retry shortly.", 5)
    held = [keys]
    return lambda: held and streams.close(held.pop())  # once, however many times it is called


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
    """Count the app's open streams and downloads, in this process."""
    app.extensions["open_streams"] = OpenStreams(
        app.config["MAX_OPEN_STREAMS"],
        app.config["MAX_OPEN_STREAMS_PER_IP"],
        app.config["MAX_OPEN_STREAMS_PER_PROCESS"],
        enabled=app.config["RATELIMIT_ENABLED"],
        downloads_per_ip=app.config["MAX_DOWNLOADS_PER_IP"],
    )
