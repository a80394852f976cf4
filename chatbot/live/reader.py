"""One reader per process for the Redis live backend: a thread blocks on a single XREAD over every reply log
that this process's open streams wait on, and hands each log's new events to the requests waiting on it.

Without it, each open stream held a Redis connection of its own for its blocking XREAD (84 connections for
40 replies on two processes, where Heroku's smallest Key-Value Store allows 20). With it, a process reads
through one connection, however many streams it holds open.

A log the thread follows is a feed: the events the thread read for it, from a `base` id on. A request
reading after an id at or past `base` is answered from them, or waits for the thread to bring more; one
from further back (a stream opened late, or resuming) reads Redis once itself, and the feed starts there.
A feed nobody waited on for LINGER_SECONDS is dropped.

A new feed joins the thread's next XREAD. So that it need not wait for the current one to time out, the
thread also reads a small stream of this process's own (its wake key), which the request that made the
feed adds an entry to: the XREAD returns at once and the next one includes the feed. Chosen over a short
block timeout alone, which would delay a stream's first token by up to that timeout; and over CLIENT
UNBLOCK, which managed Redis services may not allow. When Redis refuses the write (it is full), the block
timeout (BLOCK_MS) still bounds the wait.
"""

import bisect
import json
import logging
import os
import secrets
import threading
import time

import redis

from . import LiveUnavailable, id_order

logger = logging.getLogger(__name__)

# The longest one XREAD blocks: how late a feed may join when its wake-up could not be written.
BLOCK_MS = 1000
# After a Redis error, the thread tries again this much later (the waiting requests were told at once).
RETRY_SECONDS = 1.0
# A feed nobody waited on for this long is dropped (a stream between two reads is back within milliseconds).
LINGER_SECONDS = 10.0
# A feed keeps at most this many events (older ones are read from Redis again if anyone asks).
FEED_EVENTS = 2000
# Events one XREAD takes from one log at most.
COUNT = 1000
WAKE_PREFIX = "chatbot:live-reader:"
# The wake key outlives a quiet process by this much, then goes away by itself.
WAKE_TTL = 3600


def decode(entries):
    """[(id, event)] from a stream's raw entries (each event is JSON under the field "e")."""
    return [(event_id.decode(), json.loads(fields[b"e"])) for event_id, fields in entries]


class _Feed:
    """One followed log: its events after `base` up to `position`, as the thread read them."""

    def __init__(self, changed):
        self.changed = changed  # a Condition on the reader's lock: new events, or an error
        self.base = self.position = "0-0"
        self.ids, self.entries = [], []  # id_order of each entry, for bisect; [(id, event)]
        self.waiters, self.used = 0, time.monotonic()

    def restart(self, after, found):
        """The feed holds exactly what follows after: found."""
        self.base, self.entries = after, list(found)
        self.ids = [id_order(event_id) for event_id, _ in found]
        self.position = found[-1][0] if found else after

    def reaches(self, after):
        """True when every event after `after` that the thread read is here."""
        return id_order(after) >= id_order(self.base)

    def events_after(self, after):
        """The events after `after`, or None when the feed does not reach back to it."""
        if not self.reaches(after):
            return None
        return self.entries[bisect.bisect_right(self.ids, id_order(after)) :]

    def extend(self, found):
        """Add events the thread read after position; keep the newest FEED_EVENTS."""
        self.entries += found
        self.ids += [id_order(event_id) for event_id, _ in found]
        self.position = found[-1][0]
        if len(self.entries) > FEED_EVENTS:
            self.base = self.entries[-FEED_EVENTS - 1][0]
            del self.entries[:-FEED_EVENTS], self.ids[:-FEED_EVENTS]


class StreamReader:
    """The process's reader thread and its feeds. client is its own (the thread is its only user: one
    connection); writer is the shared pool's client, for the wake-up."""

    def __init__(self, client, writer):
        self._client, self._writer = client, writer
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # the thread waits here while it follows nothing
        self._feeds = {}
        self._errors, self._error = 0, None  # how many XREADs failed, and the last failure
        self._thread, self._pid, self._closed = None, None, False
        self._wake_key, self._wake_position = None, "0-0"

    def read(self, name, after, timeout, fetch):
        """Events of stream name after id after ("0-0": from the start), waiting up to timeout seconds for
        one. fetch(after) reads Redis directly, when no feed reaches back to after."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._ensure_thread()
            feed, errors = self._feeds.get(name), self._errors
            reached = feed is not None and feed.reaches(after)
        if not reached:
            found = fetch(after)
            if self._follow(name, after, found):
                self._wake()
            if found:
                return found
        return self._wait(name, after, deadline, errors)

    def _follow(self, name, after, found):
        """Make the feed of name reach back to after, with what fetch found; True when the feed is new."""
        with self._lock:
            feed = self._feeds.get(name)
            created = feed is None
            if created:
                feed = self._feeds[name] = _Feed(threading.Condition(self._lock))
                feed.restart(after, found)
                self._idle.notify()
            elif not feed.reaches(after):
                feed.restart(after, found)
            feed.used = time.monotonic()
            return created

    def _wait(self, name, after, deadline, errors):
        with self._lock:
            feed = self._feeds.get(name)
            if feed is None:
                return []  # dropped meanwhile: the caller reads again
            feed.waiters += 1
            try:
                while True:
                    if self._errors != errors:
                        raise LiveUnavailable(f"Redis: {self._error}")
                    found = feed.events_after(after)
                    remaining = deadline - time.monotonic()
                    if found or found is None or remaining <= 0:
                        return found or []  # None: another request moved the feed past after; read again
                    feed.changed.wait(remaining)
            finally:
                feed.waiters -= 1
                feed.used = time.monotonic()

    def _wake(self):
        """Make the thread's current XREAD return, so the next one includes a new feed."""
        try:
            with self._writer.pipeline(transaction=False) as pipe:
                pipe.xadd(self._wake_key, {"w": "1"}, maxlen=1, approximate=False)
                pipe.expire(self._wake_key, WAKE_TTL)
                pipe.execute()
        except redis.RedisError:
            pass  # Redis is full or down: the current XREAD ends within BLOCK_MS anyway

    def _ensure_thread(self):
        """Start the thread in this process (again after a fork: threads do not survive it). Holds the lock."""
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        self._pid, self._feeds = os.getpid(), {}
        self._wake_key, self._wake_position = f"{WAKE_PREFIX}{secrets.token_hex(8)}", "0-0"
        self._thread = threading.Thread(target=self._run, name="live-reader", daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            with self._lock:
                self._drop_idle_feeds()
                while not self._feeds and not self._closed:
                    self._idle.wait(LINGER_SECONDS)
                    self._drop_idle_feeds()
                if self._closed:
                    return
                streams = {name: feed.position for name, feed in self._feeds.items()}
            streams[self._wake_key] = self._wake_position
            try:
                self._deliver(self._client.xread(streams, count=COUNT, block=BLOCK_MS) or [], streams)
            except Exception as error:  # Redis down, or a fault of ours: the waiting requests are told, not hung
                if not isinstance(error, redis.RedisError):
                    logger.exception("the live reader failed")
                self._failed(error)
                time.sleep(RETRY_SECONDS)

    def _deliver(self, replies, streams):
        """Hand each log's new events to its feed, unless the feed moved while the XREAD ran."""
        with self._lock:
            for name, entries in replies:
                name = name.decode()
                if name == self._wake_key:
                    self._wake_position = entries[-1][0].decode()
                    continue
                feed = self._feeds.get(name)
                if feed is not None and feed.position == streams[name] and entries:
                    feed.extend(decode(entries))
                    feed.changed.notify_all()

    def _failed(self, error):
        """Tell every waiting request that the read failed (each raises LiveUnavailable)."""
        with self._lock:
            self._errors, self._error = self._errors + 1, error
            for feed in self._feeds.values():
                feed.changed.notify_all()

    def _drop_idle_feeds(self):
        now = time.monotonic()
        for name in [
            name for name, feed in self._feeds.items() if not feed.waiters and now - feed.used > LINGER_SECONDS
        ]:
            del self._feeds[name]

    def following(self):
        """How many logs the thread follows (for tests and benchmarks)."""
        with self._lock:
            return len(self._feeds)

    def close(self):
        """Stop the thread (within BLOCK_MS) and close its connection."""
        with self._lock:
            self._closed = True
            self._idle.notify()
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            self._wake()
            self._thread.join(BLOCK_MS / 1000 + 1)
        self._client.close()
