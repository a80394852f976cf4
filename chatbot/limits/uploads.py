"""The daily upload allowance: the bytes of attached files one user may store a day (DAILY_UPLOAD_BYTES),
counted where the rate limits are (Redis when REDIS_URL is set), as the token budget is (budget.py).

Checked and charged together, before the files are stored: a refused message stores nothing.
"""

import time

from flask import current_app
from limits import parse

from .answers import Refused
from .rates import limiter


class UploadBudget:
    """Bytes of files one user may upload a day, in the rate limits' storage."""

    def __init__(self, limiter, per_user, enabled=True):
        self._limiter = limiter
        self._item = parse(f"{per_user} per day") if per_user > 0 and enabled else None

    def take(self, uid, size):
        """Count size bytes against uid's day; None when they fit, else the seconds until the day renews."""
        if self._item is None or size <= 0:
            return None
        strategy = self._limiter.limiter
        if strategy.hit(self._item, "upload-bytes", uid, cost=size):
            return None
        stats = strategy.get_window_stats(self._item, "upload-bytes", uid)
        return max(1, stats.reset_time - time.time())


def require_upload_room(uid, size):
    """Charge size bytes of files to uid's day, or refuse (429) when they do not fit what is left."""
    retry_after = current_app.extensions["upload_budget"].take(uid, size)
    if retry_after is not None:
        raise Refused(
            "Your message was not sent: its files are more than what is left of today's allowance of uploads. "
            "Send it without them, or again tomorrow.",
            retry_after=retry_after,
        )


def init_app(app):
    """Count uploaded bytes where the rate limits are (call after rates.init_app)."""
    app.extensions["upload_budget"] = UploadBudget(
        limiter, app.config["DAILY_UPLOAD_BYTES"], enabled=app.config["RATELIMIT_ENABLED"]
    )
