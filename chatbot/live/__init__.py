"""Live replies: each reply's event log and its stop signal, shared by every stream that reads it.

The log is one of the resumable protocol's four parts: the writer (replies.py) appends a reply's
events, the reader (stream.py) replays and follows them, in the wire format of events.py.

One interface, two backends chosen by REDIS_URL, the same shape as storage/
and llm/:

- memory.py: in this process. The default; needs nothing, serves one process.
- redis.py: Redis Streams. Every process and dyno sees every reply. A process holds a fixed few
  connections however many streams it has open (reader.py: one thread reads for all of them).

A log holds events, dicts with a "kind" (see chatbot/events.py), under ids
that increase, opaque strings a stream sends as its SSE `id:`. Reading after
an id gives exactly the events that followed it, which is how a reconnecting
EventSource (Last-Event-ID) resumes with no gap and no duplicate.

A reply's final event (kind "final": the message as stored) stands for every event before it. The Redis
backend keeps only it and what follows, a few seconds after it is logged (live/compaction.py), so a
finished reply holds about the size of those events: a reader resuming from before the final event, or
opening the stream afresh, then gets final, title and done.
"""

from flask import current_app

# A finished reply's log is kept this long, for streams that reconnect late.
FINISHED_TTL = 10 * 60
# A log is never longer than this (a reply of MAX_TOKENS pieces plus a few more events).
MAX_EVENTS = 20_000
# The kind of a reply's final event (chatbot/events.py, FINAL): the log may drop every event before it.
FINAL = "final"


class LiveUnavailable(Exception):
    """The shared log cannot be reached (Redis is down); storage still holds what was saved."""


class LiveFull(LiveUnavailable):
    """Redis refused to store more (maxmemory reached, noeviction): nothing more is logged until memory frees."""


class Live:
    """The interface both backends implement."""

    def start(self, key):
        """Begin a fresh log for a reply (dropping a previous generation's events) and clear its stop signal."""
        raise NotImplementedError

    def append(self, key, event):
        """Add an event; return its id."""
        raise NotImplementedError

    def read(self, key, after=None, timeout=0.0):
        """Return [(id, event)] logged after id `after` (all when None), waiting up to timeout seconds for one."""
        raise NotImplementedError

    def last(self, key):
        """The log's last (id, event, seconds since it was logged), or None when the log is empty or gone."""
        raise NotImplementedError

    def finish(self, key):
        """The reply ended: keep its log FINISHED_TTL seconds more, then let it go."""
        raise NotImplementedError

    def request_stop(self, key):
        """Ask the job generating this reply, in whichever process, to stop."""
        raise NotImplementedError

    def stop_requested(self, key):
        """True when Stop was asked for this reply."""
        raise NotImplementedError

    def close(self):
        """Release what the backend holds (threads, connections); it is not used afterwards."""


def id_order(event_id):
    """An event id of either backend as numbers that compare as the ids do: "12" (memory), "1700000000000-3"."""
    first, _, second = event_id.partition("-")
    return int(first), int(second or 0)


def open_live(redis_url=None, pool=None):
    """Return the backend for a Redis URL (over pool, a redis-py connection pool, when given), or the
    in-process one when there is none."""
    if redis_url:
        from .redis import RedisLive

        return RedisLive(redis_url, pool)
    from .memory import MemoryLive

    return MemoryLive()


def init_app(app):
    """Bind the live backend to the app: Redis when REDIS_URL is set, else this process.

    With Redis, app.extensions["redis_pool"] is the process's one connection pool, which the rate limits
    and reply slots share (chatbot/limits/): a process then holds POOL_SIZE + 1 connections at most.
    """
    url = app.config.get("REDIS_URL")
    pool = None
    if url:
        from ..redis_client import connection_pool

        pool = connection_pool(url)
    app.extensions["redis_pool"] = pool
    app.extensions["live"] = open_live(url, pool)


def get_live():
    """Return the current app's live backend."""
    return current_app.extensions["live"]
