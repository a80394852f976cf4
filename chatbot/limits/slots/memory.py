"""The in-process reply slots: enough for one process, the default."""

import threading
import time

from . import REPLY_SLOT_SECONDS, Slots


class MemorySlots(Slots):
    """Reply slots of one process: {uid: {mid: taken_at}}."""

    def __init__(self):
        self._slots = {}
        self._lock = threading.Lock()

    def _live(self, uid, now):
        taken = self._slots.setdefault(uid, {})
        for mid in [mid for mid, at in taken.items() if at <= now - REPLY_SLOT_SECONDS]:
            del taken[mid]
        return taken

    def acquire(self, uid, mid, limit):
        """Take a slot for reply mid unless uid holds limit already; True when held (again)."""
        with self._lock:
            taken = self._live(uid, time.time())
            if mid not in taken and len(taken) >= limit:
                return False
            taken[mid] = time.time()
            return True

    def release(self, uid, mid):
        """Give reply mid's slot back (nothing happens when it holds none)."""
        with self._lock:
            self._slots.get(uid, {}).pop(mid, None)
            if not self._slots.get(uid, True):
                del self._slots[uid]

    def in_use(self, uid):
        """How many slots uid holds."""
        with self._lock:
            return len(self._live(uid, time.time()))
