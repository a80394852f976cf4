"""The in-process reply slots: enough for one process, the default."""

import threading
import time

from . import REPLY_SLOT_SECONDS, Slots


class MemorySlots(Slots):
    """Reply slots of one process: {holder: {mid: taken_at}}."""

    def __init__(self):
        self._slots = {}
        self._lock = threading.Lock()

    def _live(self, name, now):
        """The holder's slots still held (call with the lock); a holder with none is forgotten."""
        taken = self._slots.get(name, {})
        for mid in [mid for mid, at in taken.items() if at <= now - REPLY_SLOT_SECONDS]:
            del taken[mid]
        if not taken:
            self._slots.pop(name, None)
        return taken

    def acquire(self, holders, mid):
        """Take a slot for reply mid from every (name, limit) of holders, or from none: (full, held)."""
        with self._lock:
            now = time.time()
            taken = [self._live(name, now) for name, _ in holders]
            for index, ((_, limit), held) in enumerate(zip(holders, taken, strict=True)):
                if mid not in held and len(held) >= limit:
                    return index, []
            for name, _ in holders:
                self._slots.setdefault(name, {})[mid] = now
            return None, [len(self._slots[name]) for name, _ in holders]

    def release(self, names, mid):
        """Give reply mid's slot back to each holder named."""
        with self._lock:
            for name in names:
                self._slots.get(name, {}).pop(mid, None)
                if not self._slots.get(name, True):
                    del self._slots[name]

    def in_use(self, name):
        """How many slots the holder named holds."""
        with self._lock:
            return len(self._live(name, time.time()))
