"""The daily upload allowance: the bytes of files one user, and one client address, may store a day
(DAILY_UPLOAD_BYTES, DAILY_UPLOAD_BYTES_PER_IP), counted where the rate limits are (Redis when REDIS_URL is
set), as the token budget is (budget.py).

Files sent with a message count, and so does every copy of files: a fork and a share link (charged to the
owner who makes them) and "Continue this chat" (to the visitor). Fresh guest cookies from one address share
the address's allowance. Checked and charged together, before anything is stored: a refused message or copy
stores nothing, and is not charged. Two charges at the same moment may overrun an allowance by one of them.
"""

import time

from flask import current_app
from limits import parse

from ..attachments.base import over
from .answers import Refused
from .rates import client_ip, limiter


class UploadBudget:
    """Bytes of files one user and one client address may store a day, in the rate limits' storage."""

    def __init__(self, limiter, per_user, per_ip=0, enabled=True):
        self._limiter = limiter
        per_scope = {"upload-bytes": per_user, "upload-bytes-ip": per_ip}
        self._items = {scope: parse(f"{n} per day") for scope, n in per_scope.items() if n > 0 and enabled}

    def take(self, uid, ip, size):
        """Count size bytes against the day of uid and of ip when both have room for them; return None when they
        did, else (the scope without room, the bytes it has left, the seconds until it renews), charging nothing."""
        budgets = [
            (scope, who) for scope, who in (("upload-bytes", uid), ("upload-bytes-ip", ip)) if scope in self._items
        ]
        if size <= 0 or not budgets:
            return None
        strategy = self._limiter.limiter
        for scope, who in budgets:
            if not strategy.test(self._items[scope], scope, who, cost=size):
                stats = strategy.get_window_stats(self._items[scope], scope, who)
                return scope, max(0, stats.remaining), max(1, stats.reset_time - time.time())
        for scope, who in budgets:
            strategy.hit(self._items[scope], scope, who, cost=size)
        return None


def _take(uid, size):
    return current_app.extensions["upload_budget"].take(uid, client_ip(), size)


def require_upload_room(uid, size):
    """Charge size bytes of files sent with a message to uid and this client's address, or refuse (429) when
    they do not fit what is left of either's day."""
    spent = _take(uid, size)
    if spent is not None:
        scope, _, retry_after = spent
        whose = (
            "today's allowance of uploads" if scope == "upload-bytes" else "your network's allowance of uploads today"
        )
        raise Refused(
            f"Your message was not sent: its files are more than what is left of {whose}. "
            "Send it without them, or again tomorrow.",
            retry_after=retry_after,
        )


def require_copy_room(uid, size, refused):
    """Charge size bytes of copied files to uid and this client's address, or refuse (429) when they do not fit:
    refused opens the message ("The fork was not made")."""
    spent = _take(uid, size)
    if spent is not None:
        scope, left, retry_after = spent
        whose = "your" if scope == "upload-bytes" else "your network's"
        copied, rest = over(size, left)
        raise Refused(
            f"{refused}: it copies {copied} of files, with {rest} left of {whose} "
            "allowance of uploads today (copies of files count toward it, as uploads do). It renews within a day.",
            retry_after=retry_after,
        )


def copy_charge(uid, refused):
    """A function charging the bytes of a copy's files to uid and this client (require_copy_room), for the
    copying code to call before it copies anything."""
    return lambda size: require_copy_room(uid, size, refused)


def init_app(app):
    """Count uploaded bytes where the rate limits are (call after rates.init_app)."""
    app.extensions["upload_budget"] = UploadBudget(
        limiter,
        app.config["DAILY_UPLOAD_BYTES"],
        app.config["DAILY_UPLOAD_BYTES_PER_IP"],
        enabled=app.config["RATELIMIT_ENABLED"],
    )
