"""Log-in back-off: failed attempts per username and per client address, in the rate limits' storage.

After a few free failures (LOGIN_FREE_FAILURES), each one doubles the wait before the next attempt, up to
LOGIN_MAX_BACKOFF seconds.
"""

import time

from flask import current_app

from .answers import Refused
from .rates import client_ip, limiter

# Failed log-ins are forgotten this long after the first one.
LOGIN_WINDOW_SECONDS = 3600


def _login_keys(username):
    return [f"login:user:{username}", f"login:ip:{client_ip()}"]


def _login_wait(username):
    """Seconds before the next log-in attempt for username from this client may be tried (0: now)."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        return 0
    storage, now = limiter.storage, time.time()
    waits = [storage.get_expiry(f"{key}:wait") - now for key in _login_keys(username) if storage.get(f"{key}:wait")]
    return max([0, *waits])


def require_login_allowed(username, reason):
    """Refuse (429) a password check while username's back-off from this client lasts; reason opens the message."""
    wait = _login_wait(username)
    if wait > 0:
        raise Refused(f"{reason} Please retry in {max(1, round(wait))} seconds.", wait)


def login_failed(username):
    """Count a failed log-in for username and this client; past the free ones, each doubles the wait."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        return
    storage, config = limiter.storage, current_app.config
    for key in _login_keys(username):
        failures = storage.incr(f"{key}:failures", LOGIN_WINDOW_SECONDS)
        beyond = failures - config["LOGIN_FREE_FAILURES"]
        if beyond > 0:
            wait = min(config["LOGIN_MAX_BACKOFF"], 2 ** (beyond - 1))
            storage.clear(f"{key}:wait")
            storage.incr(f"{key}:wait", wait)  # a counter that expires when the wait is over


def login_succeeded(username):
    """Forget username's failures (the client's address keeps its own: other names may be guessed from it)."""
    if current_app.config["RATELIMIT_ENABLED"]:
        for suffix in (":failures", ":wait"):
            limiter.storage.clear(f"login:user:{username}{suffix}")
