"""The Redis reply slots: a sorted set per user and per address, shared by every process and dyno."""

import time

import redis

from . import REPLY_SLOT_SECONDS, Slots

# KEYS: each holder's sorted set of reply ids scored by when taken. ARGV: now, ttl, mid, then each key's limit.
# Returns {0, held...} when the slot is taken from every holder, {index} (from 1) of the first one full.
_ACQUIRE = """
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1] - ARGV[2])
  if not redis.call('ZSCORE', key, ARGV[3]) and redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) then
    return {i}
  end
end
local held = {0}
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, ARGV[1], ARGV[3])
  redis.call('EXPIRE', key, ARGV[2])
  held[i + 1] = redis.call('ZCARD', key)
end
return held
"""


class RedisSlots(Slots):
    """Reply slots shared by every process: each reply expiring on its own (a script checks every holder
    and takes from all at once)."""

    def __init__(self, pool):
        self._redis = redis.Redis(connection_pool=pool)  # the process's shared pool (chatbot/redis_client.py)
        self._acquire = self._redis.register_script(_ACQUIRE)

    @staticmethod
    def _key(name):
        return f"chatbot:reply-slots:{name}"

    def acquire(self, holders, mid):
        """Take a slot for reply mid from every (name, limit) of holders, or from none: (full, held)."""
        keys = [self._key(name) for name, _ in holders]
        answer = self._acquire(keys=keys, args=[time.time(), REPLY_SLOT_SECONDS, mid, *(n for _, n in holders)])
        if answer[0]:
            return answer[0] - 1, []
        return None, [int(count) for count in answer[1:]]

    def release(self, names, mid):
        """Give reply mid's slot back to each holder named, in one round trip."""
        with self._redis.pipeline() as pipe:
            for name in names:
                pipe.zrem(self._key(name), mid)
            pipe.execute()

    def in_use(self, name):
        """How many slots the holder named holds."""
        key = self._key(name)
        self._redis.zremrangebyscore(key, "-inf", time.time() - REPLY_SLOT_SECONDS)
        return self._redis.zcard(key)
