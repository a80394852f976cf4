"""Reply slots: how many replies a user may have generated at once (MAX_REPLIES_AT_ONCE).

A request claims one with `take_reply_slot()` before it stores a reply (atomically, so requests sent at once
cannot all pass), and the reply's job releases it. One interface, two backends chosen by REDIS_URL, the
same shape as chatbot/live/:

- memory.py: in this process. The default.
- redis.py: a sorted set per user in Redis, shared by every process and dyno.
"""

import secrets

from flask import current_app

from ..answers import Refused

# A slot left behind by a process that died is free again after this long (a reply never runs longer).
REPLY_SLOT_SECONDS = 600


class Slots:
    """The interface both backends implement; a slot is named by an opaque id of the reply's."""

    def acquire(self, uid, mid, limit):
        """Take a slot for reply mid unless uid holds limit already; True when held (again)."""
        raise NotImplementedError

    def release(self, uid, mid):
        """Give reply mid's slot back (nothing happens when it holds none)."""
        raise NotImplementedError

    def in_use(self, uid):
        """How many slots uid holds (those older than REPLY_SLOT_SECONDS are free again)."""
        raise NotImplementedError


class ReplySlots:
    """How many replies each user has being generated, against MAX_REPLIES_AT_ONCE.

    Usable from any thread (a reply's job has no request): keep the object, not the app.
    """

    def __init__(self, backend, limit, enabled=True):
        self.backend = backend
        self.limit = limit
        self.enabled = enabled

    def acquire(self, uid, mid):
        """Hold a slot for reply mid of user uid; False when uid already has the most allowed."""
        return not self.enabled or self.backend.acquire(uid, mid, self.limit)

    def release(self, uid, mid):
        """The reply ended (done, failed, stopped): its slot is free."""
        self.backend.release(uid, mid)

    def in_use(self, uid):
        """How many of uid's replies are being generated."""
        return self.backend.in_use(uid)

    def full(self, uid):
        """True when uid may not start another reply now."""
        return self.enabled and self.backend.in_use(uid) >= self.limit


def open_slots(pool=None):
    """Return the backend over the process's Redis pool, or the in-process one when there is none."""
    if pool is not None:
        from .redis import RedisSlots

        return RedisSlots(pool)
    from .memory import MemorySlots

    return MemorySlots()


def get_reply_slots():
    """Return the current app's ReplySlots."""
    return current_app.extensions["reply_slots"]


class ReplySlot:
    """One slot of a user's replies at once, claimed before the reply exists; release() is idempotent."""

    def __init__(self, slots, uid, token):
        self._slots, self.uid, self.token, self._released = slots, uid, token, False

    def release(self):
        """The reply ended, or was never made: the slot is free."""
        if not self._released:
            self._released = True
            self._slots.release(self.uid, self.token)


def take_reply_slot(uid):
    """Claim a slot for one more reply of uid, atomically (429 while MAX_REPLIES_AT_ONCE are being written).

    Claimed before the reply is stored, so requests sent at once cannot all pass a check made before any
    of them holds a slot. The reply's job releases it when it ends; release it if no reply is started.
    """
    slots, token = get_reply_slots(), secrets.token_urlsafe(9)
    if not slots.acquire(uid, token):
        limit = current_app.config["MAX_REPLIES_AT_ONCE"]
        replies = "reply is" if limit == 1 else f"{limit} replies are"
        raise Refused(
            f"Your message was not sent: {replies} still being written. "
            "Send it again when one has finished, or stop one.",
            retry_after=10,
        )
    return ReplySlot(slots, uid, token)


def init_app(app):
    """Bind the app's reply slots: in Redis when REDIS_URL is set, else in this process."""
    app.extensions["reply_slots"] = ReplySlots(
        open_slots(app.extensions.get("redis_pool")),
        app.config["MAX_REPLIES_AT_ONCE"],
        enabled=app.config["RATELIMIT_ENABLED"],
    )
