"""Live replies: each reply's event log and its stop signal, shared by every stream that reads it.

The log is one of the resumable protocol's four parts: the writer (replies.py) appends a reply's
events, the reader (stream.py) replays and follows them, in the wire format of events.py.

One interface, two backends chosen by REDIS_URL, the same shape as storage/
and llm/:

- memory.py: in this process. The default; needs nothing, serves one process.
- redis.py: Redis Streams. Every process and dyno sees every reply.

A log holds events, dicts with a "kind" (see chatbot/events.py), under ids
that increase, opaque strings a stream sends as its SSE `id:`. Reading after
an id gives exactly the events that followed it, which is how a reconnecting
EventSource (Last-Event-ID) resumes with no gap and no duplicate.
"""

from flask import current_app

# A finished reply's log is kept this long, for streams that reconnect late.
FINISHED_TTL = 10 * 60
# A log is never longer than this (a reply of MAX_TOKENS pieces plus a few more events).
MAX_EVENTS = 20_000


class LiveUnavailable(Exception):
    """The shared log cannot be reached (Redis is down); storage still holds what was saved."""


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


def id_order(event_id):
    """An event id of either backend as numbers that compare as the ids do: "12" (memory), "1700000000000-3"."""
    first, _, second = event_id.partition("-")
    return int(first), int(second or 0)


def open_live(redis_url=None):
    """Return the backend for a Redis URL, or the in-process one when there is none."""
    if redis_url:
        from .redis import RedisLive

        return RedisLive(redis_url)
    from .memory import MemoryLive

    return MemoryLive()


def init_app(app):
    """Bind the live backend to the app: Redis when REDIS_URL is set, else this process."""
    app.extensions["live"] = open_live(app.config.get("REDIS_URL"))


def get_live():
    """Return the current app's live backend."""
    return current_app.extensions["live"]
