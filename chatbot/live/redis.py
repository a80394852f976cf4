"""The Redis live backend: one Redis Stream per reply (XADD, XREAD), shared by every process and dyno.

Connections per process, however many streams are open: the reader thread's one (reader.py: a single
XREAD BLOCK over every log this process's streams wait on), and a pool of at most POOL_SIZE shared by the
jobs, Stop, the reply slots and the rate limits (connection_pool(), app.extensions["redis_pool"]).

Memory: a reply's log holds every render patch while the reply is written; its final event stands for all
of them, so a little after it is logged the log is compacted to it and what follows (compaction.py).
"""

import json
import logging
import re

import redis

from ..redis_client import connect, connection_pool
from . import FINAL, FINISHED_TTL, MAX_EVENTS, Live, LiveFull, LiveUnavailable
from .compaction import Compactor
from .reader import StreamReader, decode

logger = logging.getLogger(__name__)

# A log nobody finishes (its process died) still goes away.
UNFINISHED_TTL = 60 * 60
PREFIX = "chatbot:reply:"
# A Redis Stream id: two numbers below 2**64 ("12" is read as "12-0"). Any other id reads from the start.
STREAM_ID = re.compile(r"[0-9]{1,20}(-[0-9]{1,20})?")


def stream_id(after):
    """after as an id Redis accepts, or "0-0" (from the start) for None and any id Redis could never give."""
    if after and STREAM_ID.fullmatch(str(after)) and all(int(part) < 2**64 for part in str(after).split("-")):
        return str(after)
    return "0-0"


def _translate(error):
    if isinstance(error, redis.OutOfMemoryError):
        return LiveFull(f"Redis is full: {error}")
    return LiveUnavailable(f"Redis: {error}")


class RedisLive(Live):
    """Each reply's events in a capped, expiring Redis Stream; Stop is a key with an expiry."""

    def __init__(self, url, pool=None):
        self.pool = pool or connection_pool(url)
        self.client = redis.Redis(connection_pool=self.pool)
        # The reader thread's own connection; its socket timeout outlasts a blocking XREAD (reader.BLOCK_MS).
        reader = connect(url, socket_connect_timeout=3, socket_timeout=10, health_check_interval=30)
        self.reader = StreamReader(reader, self.client)
        self.compactor = Compactor(self.client)

    @staticmethod
    def _events(key):
        return f"{PREFIX}{key}:events"

    @staticmethod
    def _stop(key):
        return f"{PREFIX}{key}:stop"

    def start(self, key):
        """Drop a previous generation's events and stop signal."""
        try:
            with self.client.pipeline(transaction=False) as pipe:
                # Trimmed, not deleted: the stream keeps its last id, so the new events' ids follow the old ones.
                pipe.xtrim(self._events(key), maxlen=0, approximate=False)
                pipe.delete(self._stop(key))
                pipe.execute()
        except redis.RedisError as error:
            raise _translate(error) from error

    def append(self, key, event):
        """XADD with an approximate cap, and an expiry in case the job never finishes; the final event has
        the log compacted a little later. Redis full (maxmemory): LiveFull, and the log is cut to its last
        event, freeing what it held for the reply's end (its final event); when even that does not fit, the
        log is emptied, and its readers take the reply from storage."""
        name, data = self._events(key), json.dumps(event, separators=(",", ":"))
        final = event.get("kind") == FINAL
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.xadd(name, {"e": data}, maxlen=MAX_EVENTS, approximate=True)
                pipe.expire(name, UNFINISHED_TTL)
                event_id = pipe.execute()[0].decode()
        except redis.OutOfMemoryError as error:
            self._shrink(name, keep=0 if final else 1)
            raise _translate(error) from error
        except redis.RedisError as error:
            raise _translate(error) from error
        if final:
            self.compactor.later(name, event_id)
        return event_id

    def _shrink(self, name, keep):
        """Free what a log holds but its last `keep` events (allowed when Redis is full). The last event tells
        the job the log is still its own, so it can log its end."""
        try:
            self.client.xtrim(name, maxlen=keep, approximate=False)
        except redis.RedisError as error:
            logger.warning("could not empty a reply's log: %s", error)

    def read(self, key, after=None, timeout=0.0):
        """The events after the id (from the start when None); a wait goes through the process's reader thread."""
        name, after = self._events(key), stream_id(after)
        if not timeout:
            return self._fetch(name, after)
        return self.reader.read(name, after, min(timeout, 5), lambda position: self._fetch(name, position))

    def _fetch(self, name, after):
        """XREAD without blocking, through the pool."""
        try:
            found = self.client.xread({name: after}, count=MAX_EVENTS)
        except redis.RedisError as error:
            raise _translate(error) from error
        return decode(found[0][1]) if found else []

    def last(self, key):
        """XREVRANGE for the last event; its age from its id (milliseconds) and Redis's own clock."""
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.xrevrange(self._events(key), count=1)
                pipe.time()
                entries, (seconds, microseconds) = pipe.execute()
        except redis.RedisError as error:
            raise _translate(error) from error
        if not entries:
            return None
        [(event_id, event)] = decode(entries)
        age = seconds + microseconds / 1e6 - int(event_id.split("-")[0]) / 1000
        return event_id, event, max(0.0, age)

    def finish(self, key):
        """Keep the finished (compacted) log a little while for late readers; its stop signal is spent."""
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.expire(self._events(key), FINISHED_TTL)
                pipe.delete(self._stop(key))
                pipe.execute()
        except redis.RedisError as error:
            raise _translate(error) from error

    def request_stop(self, key):
        """A key the generating job polls, wherever it runs."""
        try:
            self.client.set(self._stop(key), b"1", ex=UNFINISHED_TTL)
        except redis.RedisError as error:
            raise _translate(error) from error

    def stop_requested(self, key):
        """True once Stop was asked."""
        try:
            return bool(self.client.exists(self._stop(key)))
        except redis.RedisError as error:
            raise _translate(error) from error

    def close(self):
        """Stop the reader and compactor threads and close every connection (the pool's too)."""
        self.reader.close()
        self.compactor.close()
        self.pool.disconnect()
