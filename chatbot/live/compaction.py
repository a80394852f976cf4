"""Compacting a finished reply's Redis log, a little after its final event: the log becomes the final event
and what follows it (title, done) under the same ids, so a finished reply holds about the size of those few
events for its 10 minutes rather than every render patch.

Later, not at once: a stream a little behind (its process's reader thread has yet to read the last patches)
still gets every patch; after COMPACT_AFTER_SECONDS, a stream resuming from before the final event gets
final, title and done, which is the reply whole.

Rebuilt through DUMP and RESTORE, in one script (atomic: a new generation of the reply, begun meanwhile, is
left alone): a stream node made by XADD holds 4 KB whatever it holds, since Redis preallocates it, while a
restored one is the size of its entries. Where a service refuses DUMP or RESTORE, and when Redis is full,
XTRIM MINID drops the nodes before the final event's instead.
"""

import heapq
import logging
import os
import threading
import time

import redis

logger = logging.getLogger(__name__)

COMPACT_AFTER_SECONDS = 5.0

# KEYS[1]: the log; KEYS[2]: a scratch key. ARGV[1]: the final event's id. Returns how many entries were kept.
_REBUILD = """
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+')
if #entries == 0 or entries[1][1] ~= ARGV[1] then
  return 0
end
local ttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[2])
for _, entry in ipairs(entries) do
  redis.call('XADD', KEYS[2], entry[1], unpack(entry[2]))
end
local dump = redis.call('DUMP', KEYS[2])
redis.call('DEL', KEYS[2])
redis.call('RESTORE', KEYS[1], math.max(ttl, 0), dump, 'REPLACE')
return #entries
"""


class Compactor:
    """Compacts logs a while after their final event, in one thread of the process."""

    def __init__(self, client, delay=COMPACT_AFTER_SECONDS):
        self.delay = delay
        self._client = client
        self._rebuild = client.register_script(_REBUILD)
        self._due = []  # a heap of (when, log, final event's id)
        self._changed = threading.Condition()
        self._thread, self._pid, self._closed = None, None, False
        self._rebuild_refused = False  # the service refuses DUMP or RESTORE: XTRIM from then on

    def later(self, name, final_id):
        """Compact log name, whose final event is final_id, in `delay` seconds."""
        with self._changed:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid, self._due = os.getpid(), []  # after a fork: the thread did not survive it
                self._thread = threading.Thread(target=self._run, name="live-compactor", daemon=True)
                self._thread.start()
            heapq.heappush(self._due, (time.monotonic() + self.delay, name, final_id))
            self._changed.notify()

    def compact(self, name, final_id):
        """Now: the log becomes its final event and what follows (nothing happens to a newer generation)."""
        try:
            if not self._rebuild_refused:
                self._rebuild(keys=[name, f"{name}:compact"], args=[final_id])
                return
        except redis.OutOfMemoryError:
            pass  # the rebuild needs a little memory; trimming needs none
        except redis.ResponseError as error:
            logger.warning("DUMP/RESTORE refused (%s): finished logs are trimmed to their final event", error)
            self._rebuild_refused = True
        except redis.RedisError as error:
            logger.warning("could not compact a reply's log (it expires anyway): %s", error)
            return
        try:
            self._client.xtrim(name, minid=final_id, approximate=False)
        except redis.RedisError as error:
            logger.warning("could not compact a reply's log (it expires anyway): %s", error)

    def _run(self):
        while True:
            with self._changed:
                while not self._closed and (not self._due or self._due[0][0] > time.monotonic()):
                    self._changed.wait(self._due[0][0] - time.monotonic() if self._due else None)
                if self._closed:
                    return
                _, name, final_id = heapq.heappop(self._due)
            self.compact(name, final_id)

    def pending(self):
        """How many logs wait to be compacted."""
        with self._changed:
            return len(self._due)

    def close(self):
        """Stop the thread; logs not yet compacted expire as they are."""
        with self._changed:
            self._closed = True
            self._changed.notify()
