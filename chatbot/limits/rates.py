"""Rate limits (Flask-Limiter): requests counted per user (guest or account) and per client address.

Storage in memory, or in Redis when REDIS_URL is set, so limits hold across processes and dynos. The
decorators below are put on the views; the token budget and the log-in back-off count in the same storage.
"""

import ipaddress

from flask import current_app, request
from flask_limiter import Limiter

from ..identity import current_uid


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

# A file sent whole (not a 304): a store read and its bytes on the wire. Per address, since a share link's files
# are for anyone who has the link.
limit_downloads = limiter.shared_limit(
    _setting("DOWNLOAD_LIMIT_PER_IP"),
    scope="downloads",
    key_func=client_ip,
    deduct_when=lambda response: response.status_code == 200,
)

# Starting a provider's sign-in and coming back from it: each costs calls to the provider.
limit_sign_ins = limiter.shared_limit(_setting("SIGN_IN_LIMIT_PER_IP"), scope="sign-ins", key_func=client_ip)


def init_app(app):
    """Count in Redis when REDIS_URL is set (through redis_client, which knows rediss://), else in this process."""
    redis_url = app.config.get("REDIS_URL")
    storage_uri = app.config.setdefault("RATELIMIT_STORAGE_URI", redis_url or "memory://")
    if redis_url and storage_uri == redis_url:
        # The process's one pool (chatbot/redis_client.py, made by live.init_app): a fixed few connections.
        app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"connection_pool": app.extensions["redis_pool"]})
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "chatbot")
    limiter.init_app(app)
