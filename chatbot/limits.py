"""Rate limits, replies at once, and log-in back-off: what keeps one visitor from spending everyone's budget.

- Flask-Limiter counts requests per user (guest or account) and per client IP;
  storage in memory, or in Redis when REDIS_URL is set, so limits hold across
  processes and dynos. The decorators below are put on the views.
- Reply slots: how many replies a user may have generated at once. A request
  claims one with `take_reply_slot()` before it stores a reply (atomically, so
  requests sent at once cannot all pass), and the reply's job releases it.
- Log-in back-off: failed attempts per username and per IP; after a few free
  ones, each failure doubles the wait before the next attempt.

Open event streams and the daily token budget are in capacity.py. Every
refusal is a 429 with Retry-After (a 503 when the process itself is full),
answered by `_too_many` below.
"""

import ipaddress
import math
import secrets
import threading
import time

from flask import current_app, make_response, render_template, request, url_for
from flask_limiter import Limiter
from werkzeug.exceptions import TooManyRequests

from .conversations import CapReached
from .htmx import is_htmx, retarget
from .identity import current_uid

# Endpoints whose htmx POSTs come from the chat, where the composer shows the error (its text stays typed).
COMPOSER_ENDPOINTS = {"chat.start", "chat.send", "chat.regenerate", "chat.edit"}
# Without JavaScript a refused chat POST would lose what it carried: its page offers the post again (these words).
RESEND_LABELS = {
    "chat.start": "Send again",
    "chat.send": "Send again",
    "chat.edit": "Send again",
    "chat.regenerate": "Try again",
}
# A slot left behind by a process that died is free again after this long (a reply never runs longer).
REPLY_SLOT_SECONDS = 600
# Failed log-ins are forgotten this long after the first one.
LOGIN_WINDOW_SECONDS = 3600


def client_ip():
    """The client's address as the trusted proxies saw it (ProxyFix), an IPv6 client by its /64 network."""
    address = request.remote_addr or "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6:
        if parsed.ipv4_mapped:
            return str(parsed.ipv4_mapped)
        # One household or server gets a whole /64: counting single addresses would let it rotate freely.
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def user_key():
    """The user a request counts against: the account's or guest's id, else the client's address."""
    return current_uid() or f"ip:{client_ip()}"


limiter = Limiter(key_func=client_ip)


def _setting(name):
    return lambda: current_app.config[name]


def _per_user_and_ip(setting, scope, **options):
    """A decorator: the limit in setting per user, and the one in setting_PER_IP per client IP."""
    per_user = limiter.shared_limit(_setting(setting), scope=scope, key_func=user_key, **options)
    per_ip = limiter.shared_limit(_setting(f"{setting}_PER_IP"), scope=f"{scope}-ip", key_func=client_ip, **options)
    return lambda view: per_ip(per_user(view))


# Sending, regenerating, retrying and editing a message share one budget (only POSTs count).
limit_messages = _per_user_and_ip("MESSAGE_LIMIT", "messages", methods=["POST"])
limit_searches = _per_user_and_ip("SEARCH_LIMIT", "searches")
limit_streams = _per_user_and_ip("STREAM_LIMIT", "streams")
# A share link and "Continue this chat" each copy a whole conversation into storage: one budget for both.
limit_copies = _per_user_and_ip("COPY_LIMIT", "copies", methods=["POST"])
# A zip of someone's data reads every conversation they have.
limit_exports = _per_user_and_ip("EXPORT_LIMIT", "exports")
# A rename writes the conversation and the index.
limit_renames = _per_user_and_ip("RENAME_LIMIT", "renames", methods=["POST"])
# Only sign-ups that created an account count (they answer with a redirect).
limit_signups = limiter.shared_limit(
    _setting("SIGNUP_LIMIT_PER_IP"),
    scope="signups",
    key_func=client_ip,
    methods=["POST"],
    deduct_when=lambda response: response.status_code == 302,
)


class Refused(TooManyRequests):
    """A limit of ours (replies at once, log-in back-off) was reached; retry_after is in seconds."""

    def __init__(self, message, retry_after):
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


class Busy(Refused):
    """The process is at its capacity (open streams), which is no limit of the user's: 503, with Retry-After."""

    code = 503
    name = "Service Unavailable"


# Reply slots ---------------------------------------------------------------------------------------


class MemorySlots:
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


# KEYS[1]: the user's sorted set of reply ids scored by when taken. ARGV: now, ttl, limit, mid.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[4]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


class RedisSlots:
    """Reply slots shared by every process: a sorted set per user, each reply expiring on its own."""

    def __init__(self, pool):
        import redis

        self._redis = redis.Redis(connection_pool=pool)  # the process's shared pool (chatbot/live/__init__.py)
        self._acquire = self._redis.register_script(_ACQUIRE)

    @staticmethod
    def _key(uid):
        return f"chatbot:reply-slots:{uid}"

    def acquire(self, uid, mid, limit):
        """Take a slot for reply mid unless uid holds limit already; True when held (again)."""
        return bool(self._acquire(keys=[self._key(uid)], args=[time.time(), REPLY_SLOT_SECONDS, limit, mid]))

    def release(self, uid, mid):
        """Give reply mid's slot back."""
        self._redis.zrem(self._key(uid), mid)

    def in_use(self, uid):
        """How many slots uid holds."""
        key = self._key(uid)
        self._redis.zremrangebyscore(key, "-inf", time.time() - REPLY_SLOT_SECONDS)
        return self._redis.zcard(key)


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

    def take(self, uid, mid):
        """Hold a slot for reply mid whatever uid holds already (the check was at send time)."""
        self.backend.acquire(uid, mid, math.inf)

    def release(self, uid, mid):
        """The reply ended (done, failed, stopped): its slot is free."""
        self.backend.release(uid, mid)

    def in_use(self, uid):
        """How many of uid's replies are being generated."""
        return self.backend.in_use(uid)

    def full(self, uid):
        """True when uid may not start another reply now."""
        return self.enabled and self.backend.in_use(uid) >= self.limit


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


# Log-in back-off -----------------------------------------------------------------------------------


def _login_keys(username):
    return [f"login:user:{username}", f"login:ip:{client_ip()}"]


def login_wait(username):
    """Seconds before the next log-in attempt for username from this client may be tried (0: now)."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        return 0
    storage, now = limiter.storage, time.time()
    waits = [storage.get_expiry(f"{key}:wait") - now for key in _login_keys(username) if storage.get(f"{key}:wait")]
    return max([0, *waits])


def require_login_allowed(username, reason):
    """Refuse (429) a password check while username's back-off from this client lasts; reason opens the message."""
    wait = login_wait(username)
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


# The answer to a refusal ---------------------------------------------------------------------------


def _in_words(seconds):
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} minutes"
    return f"{round(seconds / 3600)} hours"


def _message(error, retry_after):
    if isinstance(error, Refused):
        return error.description  # it says what to do itself
    when = f"Please retry in {_in_words(retry_after)}."
    scope = getattr(getattr(error, "limit", None), "scope", None)
    scope = scope if isinstance(scope, str) else ""
    if scope.startswith("messages"):
        return f"Your message was not sent: that is more messages than this chatbot allows for now. {when}"
    if scope.startswith("searches"):
        return f"Too many searches for now. {when}"
    if scope.startswith("signups"):
        return f"Too many accounts were created from your network. {when}"
    return f"Too many requests for now. {when}"


def _retry_after(error):
    if isinstance(error, Refused):
        return error.retry_after
    current = limiter.current_limit
    reset_at = current.reset_at if current is not None else time.time() + 60
    return max(1, math.ceil(reset_at - time.time()))


def _resend(action=None, label=None):
    """The form a refused chat POST is offered again in, without JavaScript (None for other requests).

    It posts to action (the same URL unless given), holding the typed text and model when the post had them.
    """
    if request.method != "POST" or request.endpoint not in RESEND_LABELS:
        return None
    return {"action": action or request.path, "label": label or RESEND_LABELS[request.endpoint]}


def _limited_page(message, code, resend, heading=None):
    """The whole page of a refusal; "Back" goes to the conversation the request was about, if any."""
    cid = (request.view_args or {}).get("cid")
    back = url_for("chat.conversation", cid=cid) if cid else url_for("chat.index")
    return render_template("limited.html", message=message, code=code, resend=resend, heading=heading, back=back)


def _too_many(error):
    """429 (503 when busy): in the composer for the chat's htmx posts (the text stays), else a fragment or a page."""
    retry_after, code = _retry_after(error), error.code
    message = _message(error, retry_after)
    if is_htmx():
        response = make_response(render_template("regions/limit_error.html", message=message, code=code), code)
        if request.method == "POST" and request.endpoint in COMPOSER_ENDPOINTS:
            retarget(response, "#composer-error")
    else:
        response = make_response(_limited_page(message, code, _resend()), code)
    response.headers["Retry-After"] = str(retry_after)
    response.vary.add("HX-Request")
    return response


def _cap_reached(error):
    """403 for a cap on what a user stores: said in the composer (htmx), else on a page."""
    if is_htmx():
        response = make_response(render_template("regions/limit_error.html", message=str(error), code=403), 403)
        retarget(response, "#composer-error")
    else:
        # A full conversation: the text can still go to a new chat. Too many conversations: after deleting some.
        full = request.endpoint == "chat.send"
        resend = _resend(url_for("chat.start"), "Send in a new chat") if full else _resend()
        response = make_response(_limited_page(str(error), 403, resend, heading="Limit reached"), 403)
    response.vary.add("HX-Request")
    return response


def init_app(app):
    """Rate limits for the app: storage in Redis when REDIS_URL is set, else in this process."""
    redis_url = app.config.get("REDIS_URL")
    app.config.setdefault("RATELIMIT_STORAGE_URI", redis_url or "memory://")
    if redis_url:
        # The process's one pool, with its TLS settings (chatbot/live/redis.py, connection_pool): a fixed few
        # connections per process, however busy (live.init_app made it).
        app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"connection_pool": app.extensions["redis_pool"]})
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "chatbot")
    limiter.init_app(app)
    backend = RedisSlots(app.extensions["redis_pool"]) if redis_url else MemorySlots()
    app.extensions["reply_slots"] = ReplySlots(
        backend, app.config["MAX_REPLIES_AT_ONCE"], enabled=app.config["RATELIMIT_ENABLED"]
    )
    app.register_error_handler(429, _too_many)
    app.register_error_handler(Busy, _too_many)
    app.register_error_handler(CapReached, _cap_reached)
