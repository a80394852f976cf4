"""The Redis reply slots: a sorted set per user, shared by every process and dyno."""

import time

import redis

from . import REPLY_SLOT_SECONDS, Slots

# KEYS[1]: the user's sorted set of reply ids scored by when taken. ARGV: now, ttl, limit, mid.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[4]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


class RedisSlots(Slots):
    """Reply slots shared by every process: each reply expiring on its own (a script checks and takes at once)."""

    def __init__(self, pool):
        self._redis = redis.Redis(connection_pool=pool)  # the process's shared pool (chatbot/redis_client.py)
        self._acquire = self._redis.register_script(_ACQUIRE)

    @staticmethod
    def _key(uid):
        return f"chatbot:reply-slots:{uid}"

    def acquire(self, uid, mid, limit):
        """Take a slot for reply mid unless uid holds limit already; True when held (again)."""
        return bool(self._acquire(keys=[self._key(uid)], args=[time.time(), REPLY_SLOT_SECONDS, limit, mid]))

    def release(self, uid, mid):
        """Give reply mid's slot back."""
        self._redis.zrem(self._key(uid), mid)

    def in_use(self, uid):
        """How many slots uid holds."""
        key = self._key(uid)
        self._redis.zremrangebyscore(key, "-inf", time.time() - REPLY_SLOT_SECONDS)
        return self._redis.zcard(key)
