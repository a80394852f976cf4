"""Reply slots: how many replies a user, and a client address, may have generated at once
(MAX_REPLIES_AT_ONCE, MAX_REPLIES_AT_ONCE_PER_IP).

A request claims one with `take_reply_slot()` before it stores a reply (atomically, the user's and the
address's together, so requests sent at once cannot all pass), and the reply's job releases it. A fresh
guest cookie is a new user, so the address's cap is what bounds the replies one address runs at once.
One interface, two backends chosen by REDIS_URL, the same shape as chatbot/live/:

- memory.py: in this process. The default.
- redis.py: a sorted set per user and per address in Redis, shared by every process and dyno.
"""

import secrets

from flask import current_app

from ..answers import Refused
from ..rates import client_ip

# A slot left behind by a process that died is free again after this long (a reply never runs longer).
REPLY_SLOT_SECONDS = 600
# Unless MAX_REPLIES_AT_ONCE_PER_IP says otherwise: a few people may share one address (as MESSAGE_LIMIT_PER_IP).
PER_IP_FACTOR = 3


class Slots:
    """The interface both backends implement. A holder (a user, an address) is named by a string, a slot
    by an opaque id of the reply's."""

    def acquire(self, holders, mid):
        """Take a slot for reply mid from every (name, limit) of holders, or from none: return (full, held),
        full the index of the first holder at its limit (None when taken), held how many each holds now."""
        raise NotImplementedError

    def release(self, names, mid):
        """Give reply mid's slot back to each holder named (nothing happens where it holds none)."""
        raise NotImplementedError

    def in_use(self, name):
        """How many slots the holder named holds (those older than REPLY_SLOT_SECONDS are free again)."""
        raise NotImplementedError


def _address(ip):
    return f"ip:{ip}"


class ReplySlots:
    """How many replies each user, and each client address, has being generated, against their caps.

    Usable from any thread (a reply's job has no request): keep the object, not the app.
    """

    def __init__(self, backend, limit, limit_per_ip, enabled=True):
        self.backend = backend
        self.limit = limit
        self.limit_per_ip = limit_per_ip
        self.enabled = enabled

    def claim(self, uid, mid, ip=None):
        """Hold a slot for reply mid of user uid and of address ip, both or neither. Return (full, others):
        full is None when held, else the cap reached ("user" or "ip"); others, the replies of each being
        written besides this one ({"user": n, "ip": n})."""
        if not self.enabled:
            return None, {"user": 0, "ip": 0}
        holders = [("user", uid, self.limit)] + ([("ip", _address(ip), self.limit_per_ip)] if ip else [])
        full, held = self.backend.acquire([(name, limit) for _, name, limit in holders], mid)
        if full is not None:
            return holders[full][0], {}
        return None, {"ip": 0} | {scope: count - 1 for (scope, _, _), count in zip(holders, held, strict=True)}

    def release(self, uid, mid, ip=None):
        """The reply ended (done, failed, stopped): its slot is free, the user's and the address's."""
        self.backend.release([uid] + ([_address(ip)] if ip else []), mid)

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
    """One slot of a user's and of an address's replies at once, claimed before the reply exists; others
    counts the replies of each being written besides it. release() is idempotent."""

    def __init__(self, slots, uid, ip, token, others):
        self._slots, self.uid, self.ip, self.token, self.others = slots, uid, ip, token, others
        self._released = False

    def release(self):
        """The reply ended, or was never made: the slot is free."""
        if not self._released:
            self._released = True
            self._slots.release(self.uid, self.token, self.ip)


def _refusal(full):
    """Why a reply was not started, when the user's (full == "user") or the address's cap is reached."""
    if full == "user":
        limit = current_app.config["MAX_REPLIES_AT_ONCE"]
        replies = "reply is" if limit == 1 else f"{limit} replies are"
        return (
            f"Your message was not sent: {replies} still being written. "
            "Send it again when one has finished, or stop one."
        )
    limit = current_app.config["MAX_REPLIES_AT_ONCE_PER_IP"]
    replies = "reply from your network is" if limit == 1 else f"{limit} replies from your network are"
    return f"Your message was not sent: {replies} still being written. Send it again when one has finished."


def take_reply_slot(uid):
    """Claim a slot for one more reply of uid and of this client's address, atomically (429 while
    MAX_REPLIES_AT_ONCE of the user's, or MAX_REPLIES_AT_ONCE_PER_IP of the address's, are being written).

    Claimed before the reply is stored, so requests sent at once cannot all pass a check made before any
    of them holds a slot. The reply's job releases it when it ends; release it if no reply is started.
    """
    slots, token, ip = get_reply_slots(), secrets.token_urlsafe(9), client_ip()
    full, others = slots.claim(uid, token, ip)
    if full is not None:
        raise Refused(_refusal(full), retry_after=10)
    return ReplySlot(slots, uid, ip, token, others)


def init_app(app):
    """Bind the app's reply slots: in Redis when REDIS_URL is set, else in this process."""
    per_user = app.config["MAX_REPLIES_AT_ONCE"]
    per_ip = app.config["MAX_REPLIES_AT_ONCE_PER_IP"] = app.config.get("MAX_REPLIES_AT_ONCE_PER_IP") or (
        PER_IP_FACTOR * per_user
    )
    app.extensions["reply_slots"] = ReplySlots(
        open_slots(app.extensions.get("redis_pool")), per_user, per_ip, enabled=app.config["RATELIMIT_ENABLED"]
    )
