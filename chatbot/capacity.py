"""What a process and a day can give: threads for open event streams, and the model's tokens.

- Open streams. Under gunicorn's gthread worker, an open event stream holds one
  of the process's threads for as long as its reply lasts (so does a form post
  without JavaScript, which waits for its reply). They are counted per user
  and per client address (429 past MAX_OPEN_STREAMS, MAX_OPEN_STREAMS_PER_IP),
  and in the whole process (503 past MAX_OPEN_STREAMS_PER_PROCESS, which is
  below GUNICORN_THREADS): however many addresses open streams, page views,
  health checks and log-ins still find a thread. Counted per process, since
  the threads are.
- The daily token budget. The tokens (the model's pieces) generated a day for
  one user and for one client address (DAILY_TOKEN_BUDGET,
  DAILY_TOKEN_BUDGET_PER_IP), counted where the rate limits are (Redis when
  REDIS_URL is set). Checked when a reply is asked for, charged when it ends,
  so a reply may overrun it once; fresh guest cookies from one address share
  the address's budget.
"""

import threading
import time
from contextlib import contextmanager

from flask import current_app
from limits import parse

from .limits import Busy, Refused, client_ip, limiter

# The process's count of open streams, beside each user's and each address's.
PROCESS = "process"


class OpenStreams:
    """Event streams (and other requests waiting on a reply) open in this process: per user, per client
    address, and in all. The per-user and per-address counts follow RATELIMIT_ENABLED; the process's is
    always on, since it keeps the process answering rather than sharing a budget."""

    def __init__(self, per_user, per_ip, per_process, enabled=True):
        self.per_user, self.per_ip, self.per_process, self.enabled = per_user, per_ip, per_process, enabled
        self._open = {}
        self._lock = threading.Lock()

    def open(self, uid=None, ip=None):
        """Count one more; return (the keys to close() it with, None), or (None, the key at its limit)."""
        limits = [(PROCESS, self.per_process)]
        if self.enabled:
            limits += [(f"user:{uid}", self.per_user)] if uid else []
            limits += [(f"ip:{ip}", self.per_ip)] if ip else []
        with self._lock:
            for key, limit in limits:
                if self._open.get(key, 0) >= limit:
                    return None, key
            for key, _ in limits:
                self._open[key] = self._open.get(key, 0) + 1
        return [key for key, _ in limits], None

    def close(self, keys):
        """One counted by open() ended."""
        with self._lock:
            for key in keys:
                self._open[key] -= 1
                if not self._open[key]:
                    del self._open[key]

    def count(self, key=PROCESS):
        """How many are open under key (the whole process by default)."""
        with self._lock:
            return self._open.get(key, 0)


def _open_streams():
    return current_app.extensions["open_streams"]


def open_stream(uid):
    """Count an event stream of uid from this client; return what ends the count (it needs no request).

    429 when the user or the address has too many open, 503 when the process has: either answer comes at
    once, and the page's EventSource tries again later by itself.
    """
    streams = _open_streams()
    keys, full = streams.open(uid, client_ip())
    if full == PROCESS:
        raise Busy("This server is holding as many live replies as it can. Your reply goes on; retry shortly.", 5)
    if keys is None:
        raise Refused("Too many replies are open in other tabs or windows. Close some, then reload.", 10)
    return lambda: streams.close(keys)


@contextmanager
def thread_for_waiting():
    """Count a request waiting for a reply (a form post without JavaScript) among the process's open streams,
    while it waits; yield False when the process has no thread to spare (the request answers at once)."""
    streams = _open_streams()
    keys, _ = streams.open()
    try:
        yield keys is not None
    finally:
        if keys is not None:
            streams.close(keys)


class TokenBudget:
    """Tokens the model may generate a day for one user and for one client address, in the rate limits'
    storage. Usable from a reply's job: it holds Flask-Limiter's strategy, not the app."""

    def __init__(self, limiter, per_user, per_ip, enabled=True):
        self._limiter = limiter
        per_scope = {"tokens": per_user, "tokens-ip": per_ip}
        self._items = {scope: parse(f"{n} per day") for scope, n in per_scope.items() if n > 0 and enabled}

    def _budgets(self, uid, ip):
        """(item, scope, who) of each budget in force for uid and ip."""
        wanted = (("tokens", uid), ("tokens-ip", ip))
        return [(self._items[scope], scope, who) for scope, who in wanted if scope in self._items]

    def exhausted(self, uid, ip):
        """(scope, seconds until it renews) of the first used-up budget of uid or ip; None while both last."""
        strategy = self._limiter.limiter
        for item, scope, who in self._budgets(uid, ip):
            if not strategy.test(item, scope, who):
                reset_at = strategy.get_window_stats(item, scope, who).reset_time
                return scope, max(1, reset_at - time.time())
        return None

    def charge(self, uid, ip, tokens):
        """Count tokens against the day of uid and of ip."""
        if tokens > 0:
            for item, scope, who in self._budgets(uid, ip):
                self._limiter.limiter.hit(item, scope, who, cost=tokens)


def get_token_budget():
    """Return the current app's TokenBudget."""
    return current_app.extensions["token_budget"]


def require_token_budget(uid):
    """Refuse (429) a new reply when uid, or this client's address, has used the day's budget."""
    spent = get_token_budget().exhausted(uid, client_ip())
    if spent:
        scope, retry_after = spent
        who = "you have" if scope == "tokens" else "your network has"
        raise Refused(
            f"Your message was not sent: {who} used today's allowance of replies. It renews within a day.",
            retry_after=retry_after,
        )


def token_charge(uid):
    """A function charging a reply's pieces to uid and to this client's address (it needs no request: the
    reply's job calls it when the reply ends)."""
    budget, ip = get_token_budget(), client_ip()
    return lambda pieces: budget.charge(uid, ip, pieces)


def init_app(app):
    """Count the app's open streams (in this process) and tokens (where the rate limits are)."""
    enabled = app.config["RATELIMIT_ENABLED"]
    app.extensions["token_budget"] = TokenBudget(
        limiter, app.config["DAILY_TOKEN_BUDGET"], app.config["DAILY_TOKEN_BUDGET_PER_IP"], enabled=enabled
    )
    app.extensions["open_streams"] = OpenStreams(
        app.config["MAX_OPEN_STREAMS"],
        app.config["MAX_OPEN_STREAMS_PER_IP"],
        app.config["MAX_OPEN_STREAMS_PER_PROCESS"],
        enabled=enabled,
    )
