"""The in-process live backend: each reply's log in a list, with a condition to wait on."""

import bisect
import itertools
import threading
import time

from . import FINISHED_TTL, MAX_EVENTS, Live


class _Log:
    def __init__(self):
        self.events = []  # [(number, event)]
        self.changed = threading.Condition()
        self.stop = False
        self.expires = None
        self.logged_at = None  # when the last event was logged (time.monotonic())


class MemoryLive(Live):
    """Logs in this process's memory: every stream of a reply must reach this process."""

    def __init__(self):
        self._logs = {}
        self._lock = threading.Lock()
        # One counter for every log, so a new generation's ids follow the old one's.
        self._numbers = itertools.count(1)

    def _log(self, key, create=True):
        with self._lock:
            log = self._logs.get(key)
            if log is None and create:
                log = self._logs[key] = _Log()
            return log

    def _expire(self):
        now = time.monotonic()
        with self._lock:
            for key in [key for key, log in self._logs.items() if log.expires and log.expires < now]:
                del self._logs[key]

    def start(self, key):
        """A fresh log; the previous generation's events and stop signal are dropped."""
        self._expire()
        log = self._log(key)
        with log.changed:
            log.events, log.stop, log.expires = [], False, None

    def append(self, key, event):
        """Add an event and wake the streams waiting for it."""
        log = self._log(key)
        with log.changed:
            number = next(self._numbers)
            log.events.append((number, event))
            log.logged_at = time.monotonic()
            del log.events[:-MAX_EVENTS]
            log.changed.notify_all()
        return str(number)

    def read(self, key, after=None, timeout=0.0):
        """Events after `after`, waiting up to timeout for the first."""
        log = self._log(key, create=False)
        if log is None:
            if timeout:
                time.sleep(min(timeout, 0.2))
            return []
        after = int(after) if after and str(after).isascii() and str(after).isdigit() else 0
        deadline = time.monotonic() + timeout
        with log.changed:
            while True:
                start = bisect.bisect_right(log.events, after, key=lambda item: item[0])
                found = [(str(number), event) for number, event in log.events[start:]]
                remaining = deadline - time.monotonic()
                if found or remaining <= 0:
                    return found
                log.changed.wait(remaining)

    def last(self, key):
        """The last event, its id, and how long ago it was logged."""
        log = self._log(key, create=False)
        if log is None:
            return None
        with log.changed:
            if not log.events:
                return None
            number, event = log.events[-1]
            return str(number), event, time.monotonic() - log.logged_at

    def finish(self, key):
        """Forget the log FINISHED_TTL seconds from now."""
        log = self._log(key, create=False)
        if log is not None:
            log.expires = time.monotonic() + FINISHED_TTL

    def request_stop(self, key):
        """Set the stop flag the job checks (no log: no job of this process to stop)."""
        log = self._log(key, create=False)
        if log is None:
            return
        with log.changed:
            log.stop = True
            log.changed.notify_all()

    def stop_requested(self, key):
        """True once Stop was asked."""
        log = self._log(key, create=False)
        return bool(log and log.stop)
