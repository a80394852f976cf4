"""The Redis live backend: one Redis Stream per reply (XADD, XREAD), shared by every process and dyno."""

import json

import redis

from ..redis_client import connect
from . import FINISHED_TTL, MAX_EVENTS, Live, LiveUnavailable

# A log nobody finishes (its process died) still goes away.
UNFINISHED_TTL = 60 * 60
PREFIX = "chatbot:reply:"
# How Redis refuses a stream id it could never have given: the client's id, not Redis, is at fault.
INVALID_ID = "Invalid stream ID"


def _translate(error):
    return LiveUnavailable(f"Redis: {error}")


class RedisLive(Live):
    """Each reply's events in a capped, expiring Redis Stream; Stop is a key with an expiry."""

    def __init__(self, url):
        # redis-py's client holds a thread-safe connection pool; one per process.
        # The socket timeout outlasts the longest blocking read (see read()).
        self.client = connect(url, socket_connect_timeout=3, socket_timeout=10, health_check_interval=30)

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
        """XADD with an approximate cap, and an expiry in case the job never finishes."""
        name = self._events(key)
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.xadd(name, {"e": json.dumps(event, separators=(",", ":"))}, maxlen=MAX_EVENTS, approximate=True)
                pipe.expire(name, UNFINISHED_TTL)
                event_id, _ = pipe.execute()
        except redis.RedisError as error:
            raise _translate(error) from error
        return event_id.decode()

    def read(self, key, after=None, timeout=0.0):
        """XREAD after the id (from the start when None), blocking up to timeout seconds."""
        block = int(min(timeout, 5) * 1000) or None
        try:
            found = self.client.xread({self._events(key): after or "0-0"}, count=MAX_EVENTS, block=block)
        except redis.ResponseError as error:
            if after and INVALID_ID in str(error):
                return self.read(key, None, timeout)  # an id Redis never gives (a part over 2**64 - 1): the start
            raise _translate(error) from error
        except redis.RedisError as error:
            raise _translate(error) from error
        if not found:
            return []
        return [(event_id.decode(), json.loads(fields[b"e"])) for event_id, fields in found[0][1]]

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
        event_id, fields = entries[0]
        event_id = event_id.decode()
        age = seconds + microseconds / 1e6 - int(event_id.split("-")[0]) / 1000
        return event_id, json.loads(fields[b"e"]), max(0.0, age)

    def finish(self, key):
        """Keep the finished log a little while for late readers."""
        try:
            self.client.expire(self._events(key), FINISHED_TTL)
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
