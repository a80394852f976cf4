"""The daily token budget: the tokens (the model's pieces) generated a day for one user and for one client
address (DAILY_TOKEN_BUDGET, DAILY_TOKEN_BUDGET_PER_IP), counted where the rate limits are (Redis when
REDIS_URL is set).

Checked when a reply is asked for, charged when it ends, so a reply may overrun it once; fresh guest
cookies from one address share the address's budget.
"""

import time

from flask import current_app
from limits import parse

from .. import billing
from .answers import Refused
from .rates import client_ip, limiter


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
        for item, scope, who in self._budgets(uid, ip):
            # Asked only when a budget is in force: with rate limits off, Flask-Limiter has no strategy.
            strategy = self._limiter.limiter
            if not strategy.test(item, scope, who):
                reset_at = strategy.get_window_stats(item, scope, who).reset_time
                return scope, max(1, reset_at - time.time())
        return None

    def charge(self, uid, ip, tokens):
        """Count tokens against the day of uid and of ip."""
        if tokens > 0:
            for item, scope, who in self._budgets(uid, ip):
                self._limiter.limiter.hit(item, scope, who, cost=tokens)


def _token_budget():
    return current_app.extensions["token_budget"]


def require_token_budget(uid):
    """Refuse (429) a new reply when uid, or this client's address, has used the day's budget."""
    if billing.payer().user_pays:
        return  # the budget caps what the operator pays for
    spent = _token_budget().exhausted(uid, client_ip())
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
    budget, ip = _token_budget(), client_ip()
    if billing.payer().user_pays:
        return lambda pieces: None
    return lambda pieces: budget.charge(uid, ip, pieces)


def init_app(app):
    """Count the app's tokens where its rate limits are (call after rates.init_app)."""
    app.extensions["token_budget"] = TokenBudget(
        limiter,
        app.config["DAILY_TOKEN_BUDGET"],
        app.config["DAILY_TOKEN_BUDGET_PER_IP"],
        enabled=app.config["RATELIMIT_ENABLED"],
    )
