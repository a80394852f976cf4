"""The daily token budget: the tokens (the model's pieces) generated a day for one user and for one client
address (DAILY_TOKEN_BUDGET, DAILY_TOKEN_BUDGET_PER_IP), counted where the rate limits are (Redis when
REDIS_URL is set).

Checked when a reply is asked for, charged when it ends. A reply being written may still take MAX_TOKENS,
so a new one starts only while the budget has more left than that for each of the user's (and of the
address's) replies being written: replies asked for at once overrun a budget by one reply at most. Fresh
guest cookies from one address share the address's budget.
"""

import time

from flask import current_app
from limits import parse

from .answers import Refused
from .rates import client_ip, limiter


class TokenBudget:
    """Tokens the model may generate a day for one user and for one client address, in the rate limits'
    storage. Usable from a reply's job: it holds Flask-Limiter's strategy, not the app."""

    def __init__(self, limiter, per_user, per_ip, max_tokens, enabled=True):
        self._limiter = limiter
        self._reserve = max_tokens  # what a reply being written may still take
        per_scope = {"tokens": per_user, "tokens-ip": per_ip}
        self._items = {scope: parse(f"{n} per day") for scope, n in per_scope.items() if n > 0 and enabled}

    def _budgets(self, uid, ip):
        """(item, scope, who, holder) of each budget in force for uid and ip; holder names its reply slots."""
        wanted = (("tokens", uid, "user"), ("tokens-ip", ip, "ip"))
        return [(self._items[scope], scope, who, holder) for scope, who, holder in wanted if scope in self._items]

    def exhausted(self, uid, ip, others=None):
        """(scope, seconds until it renews) of the first budget of uid or ip without room for a new reply;
        None while both have room. others ({"user": n, "ip": n}) counts the replies of each being written,
        which may each still take MAX_TOKENS; the seconds are None when only those leave no room."""
        others = others or {}
        for item, scope, who, holder in self._budgets(uid, ip):
            # Asked only when a budget is in force: with rate limits off, Flask-Limiter has no strategy.
            strategy = self._limiter.limiter
            held = others.get(holder, 0) * self._reserve
            if not strategy.test(item, scope, who, cost=1 + held):
                stats = strategy.get_window_stats(item, scope, who)
                if stats.remaining > 0 and held:
                    return scope, None
                return scope, max(1, stats.reset_time - time.time())
        return None

    def charge(self, uid, ip, tokens):
        """Count tokens against the day of uid and of ip."""
        if tokens > 0:
            for item, scope, who, _ in self._budgets(uid, ip):
                self._limiter.limiter.hit(item, scope, who, cost=tokens)


def _token_budget():
    return current_app.extensions["token_budget"]


def _refuse(spent):
    scope, retry_after = spent
    if retry_after is None:
        whose = "your" if scope == "tokens" else "your network's"
        raise Refused(
            f"Your message was not sent: what is left of {whose} allowance of replies today is kept for the "
            "replies being written. Send it again when they have finished.",
            retry_after=10,
        )
    who = "you have" if scope == "tokens" else "your network has"
    raise Refused(
        f"Your message was not sent: {who} used today's allowance of replies. It renews within a day.",
        retry_after=retry_after,
    )


def require_room_for(slot):
    """Refuse (429) the reply holding slot (a ReplySlot, just claimed) unless the day's budgets of its user
    and address have room for it besides their replies being written (the slot's others, each of which may
    still take MAX_TOKENS). The slot was claimed first and the spent tokens are read after, and a reply
    is charged before its slot is free: every reply is counted, as spent or as being written. A reply the
    user pays for never comes here: the budget caps what the operator pays for (chatbot/limits/__init__.py)."""
    spent = _token_budget().exhausted(slot.uid, slot.ip, slot.others)
    if spent:
        _refuse(spent)


def token_charge(uid, operator_pays=True):
    """A function charging a reply's pieces to uid and to this client's address (it needs no request: the
    reply's job calls it when the reply ends); nothing is charged for a reply the user pays for."""
    if not operator_pays:
        return lambda pieces: None
    budget, ip = _token_budget(), client_ip()
    return lambda pieces: budget.charge(uid, ip, pieces)


def init_app(app):
    """Count the app's tokens where its rate limits are (call after rates.init_app)."""
    app.extensions["token_budget"] = TokenBudget(
        limiter,
        app.config["DAILY_TOKEN_BUDGET"],
        app.config["DAILY_TOKEN_BUDGET_PER_IP"],
        app.config["MAX_TOKENS"],
        enabled=app.config["RATELIMIT_ENABLED"],
    )
