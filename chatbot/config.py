"""Configuration: one mapping read from the environment, checked at start-up."""

import os

DEV_SECRET_KEY = "dev-only-secret-change-me"
MIN_SECRET_KEY = 32

DEFAULT_HF_MODELS = (
    "google/gemma-2-9b-it",
    "meta-llama/Llama-3.1-8B-Instruct",
    "Qwen/Qwen2.5-7B-Instruct",
    "mistralai/Mistral-7B-Instruct-v0.3",
    # Sees images (its Hub pipeline_tag is image-text-to-text): Inference Providers' own documentation shows
    # it as the example of a chat completion with an image (Nebius). Not checked live here (no internet).
    "google/gemma-3-27b-it",
)
# The default list's models that see images, when VISION_MODELS is not set; the Hub's answer adds others
# (chatbot/llm/served.py, once per process in the background).
DEFAULT_VISION_MODELS = ("google/gemma-3-27b-it",)


# How replies are generated unless the environment says otherwise (the one place these numbers live).
GENERATION_DEFAULTS = {"TEMPERATURE": 0.5, "TOP_P": 0.7, "MAX_TOKENS": 1024, "CONTEXT_CHARS": 12000}


# How a live reply keeps time, in seconds: the one place these numbers live. They depend on one another, so
# validate() checks TIMING_RELATIONS at start-up. Internal: tests shorten them; an operator has little reason to.
TIMING_DEFAULTS = {
    # A reply's job saves its text at least this often, which renews its lease...
    "REPLY_SAVE_SECONDS": 5,
    # ...so a streaming reply whose lease is older than this belongs to a process that died: it is interrupted.
    "REPLY_LEASE_SECONDS": 20,
    # How often a job looks for Stop (and for a shutdown): the model call is abandoned within this.
    "STOP_POLL_SECONDS": 0.1,
    # Pieces that arrive within this long of the last render are rendered together: one event instead of
    # several, each with its SSE framing (bench: bytes sent per reply against its final HTML).
    "RENDER_SECONDS": 0.1,
    # A stream waits this long for the next event before it looks around (shutdown, a dead job, a heartbeat).
    "STREAM_READ_SECONDS": 1.0,
    # A comment this often keeps proxies from closing a quiet stream.
    "HEARTBEAT_SECONDS": 10,
    # After this long with no event, a stream checks storage: the reply may have ended elsewhere, or its job died.
    "QUIET_CHECK_SECONDS": 10,
    # A finished reply's log that stays silent this long (its title never came) ends its streams anyway.
    "FINISHED_QUIET_SECONDS": 60,
    # Without JavaScript a form post waits this long for its reply, then shows the conversation anyway.
    "NO_JS_WAIT_SECONDS": 25,
}
# Heroku's router closes a connection silent for 55 s, and one whose answer has not begun within 30 s.
ROUTER_IDLE_SECONDS, ROUTER_FIRST_BYTE_SECONDS = 55, 30
# A lease lasts at least this many save intervals: one slow save must not make a running reply look dead.
LEASE_SAVES = 3
# (settings, what must hold between them, the requirement and why): a broken one stops the start-up.
TIMING_RELATIONS = (
    (
        ("REPLY_LEASE_SECONDS", "REPLY_SAVE_SECONDS"),
        lambda lease, save: lease >= LEASE_SAVES * save,
        f"REPLY_LEASE_SECONDS must be at least {LEASE_SAVES} times REPLY_SAVE_SECONDS: a job renews its lease "
        "at each save, and one slow save must not make a running reply look dead",
    ),
    (
        ("STOP_POLL_SECONDS", "RENDER_SECONDS", "REPLY_SAVE_SECONDS"),
        lambda poll, render, save: poll < save and render < save,
        "STOP_POLL_SECONDS and RENDER_SECONDS must be below REPLY_SAVE_SECONDS: a job waits that long at most "
        "for the model's next piece, and saves only between its waits",
    ),
    (
        ("STREAM_READ_SECONDS", "HEARTBEAT_SECONDS"),
        lambda read, heartbeat: read < heartbeat and heartbeat + read < ROUTER_IDLE_SECONDS,
        f"STREAM_READ_SECONDS must be below HEARTBEAT_SECONDS, and the two together below {ROUTER_IDLE_SECONDS}: "
        "a quiet stream sends its heartbeat when a read wakes it, and Heroku's router closes a connection "
        f"silent for {ROUTER_IDLE_SECONDS} s",
    ),
    (
        ("QUIET_CHECK_SECONDS", "FINISHED_QUIET_SECONDS"),
        lambda check, finished: check < finished,
        "QUIET_CHECK_SECONDS must be below FINISHED_QUIET_SECONDS: a stream notices that a finished reply's "
        "log went quiet only when it checks",
    ),
    (
        ("STREAM_READ_SECONDS", "NO_JS_WAIT_SECONDS"),
        lambda read, wait: read < wait < ROUTER_FIRST_BYTE_SECONDS,
        f"NO_JS_WAIT_SECONDS must be above STREAM_READ_SECONDS and below {ROUTER_FIRST_BYTE_SECONDS}: the form "
        f"post waits in reads, and Heroku's router drops a request not answered within {ROUTER_FIRST_BYTE_SECONDS} s",
    ),
)


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def _flag(name, default):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    value = value.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def _number(name, default, kind=int):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {value!r}") from None


def _list(name):
    value = os.environ.get(name, "")
    return [item.strip() for item in value.split(",") if item.strip()]


def from_environment():
    """Return the app's settings read from environment variables."""
    hf_token = os.environ.get("HF_TOKEN") or os.environ.get("HF_KEY") or None
    backend = (os.environ.get("LLM_BACKEND") or ("huggingface" if hf_token else "local")).lower()
    return (
        security_settings()
        | sign_in_settings()
        | {
            "SECRET_KEY": os.environ.get("SECRET_KEY") or DEV_SECRET_KEY,
            "STORAGE_URL": os.environ.get("STORAGE_URL") or None,
            "LLM_BACKEND": backend,
            "HF_TOKEN": hf_token,
            "HF_BASE_URL": os.environ.get("HF_BASE_URL") or None,
            "HF_PROVIDER": os.environ.get("HF_PROVIDER") or None,
            "HF_TIMEOUT": _number("HF_TIMEOUT", 60.0, float),
            # The Hub the models check asks (huggingface_hub's own setting; a mirror, or a test's fake Hub).
            "HF_ENDPOINT": (os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None,
            "LOCAL_MODEL_PATH": os.environ.get("LOCAL_MODEL_PATH") or None,
            "CHATBOT_MODELS": _list("CHATBOT_MODELS"),
            # The models (of CHATBOT_MODELS) that accept images, besides those the Hub says do (pipeline_tag
            # image-text-to-text); the others are sent text only.
            "VISION_MODELS": _list("VISION_MODELS") or list(DEFAULT_VISION_MODELS),
            "SYSTEM_PROMPT": os.environ.get("SYSTEM_PROMPT") or None,
            "TEMPERATURE": _number("TEMPERATURE", GENERATION_DEFAULTS["TEMPERATURE"], float),
            "TOP_P": _number("TOP_P", GENERATION_DEFAULTS["TOP_P"], float),
            "MAX_TOKENS": _number("MAX_TOKENS", GENERATION_DEFAULTS["MAX_TOKENS"]),
            "CONTEXT_CHARS": _number("CONTEXT_CHARS", GENERATION_DEFAULTS["CONTEXT_CHARS"]),
            "REDIS_URL": os.environ.get("REDIS_URL") or None,
            "MAX_MESSAGE_CHARS": _number("MAX_MESSAGE_CHARS", 8000),
            "ALLOW_GUESTS": _flag("ALLOW_GUESTS", True),
            "SESSION_COOKIE_SECURE": _flag("SESSION_COOKIE_SECURE", False),
            "LOG_FORMAT": (os.environ.get("LOG_FORMAT") or "").strip().lower() or None,  # None: by debug mode
            "CHECK_MODELS": _flag("CHECK_MODELS", None),  # None: at start-up, except in tests
            **{name: _number(name, default, float) for name, default in TIMING_DEFAULTS.items()},
        }
    )


def validate(app):
    """Refuse to start with settings that would be unsafe or cannot work."""
    config = app.config
    if config["SECRET_KEY"] == DEV_SECRET_KEY and not (app.debug or app.testing):
        raise ConfigError(
            "SECRET_KEY is not set. Set it to a long random string "
            '(python -c "import secrets; print(secrets.token_hex(32))"), '
            "or run with FLASK_DEBUG=1 for local development."
        )
    if config["LLM_BACKEND"] not in ("huggingface", "local"):
        raise ConfigError("LLM_BACKEND must be 'huggingface' or 'local'")
    if config["LLM_BACKEND"] == "huggingface" and not (config["HF_TOKEN"] or config["HF_BASE_URL"]):
        raise ConfigError("LLM_BACKEND=huggingface needs HF_TOKEN (or HF_BASE_URL for a self-hosted server)")
    if config.get("LOG_FORMAT") not in (None, "json", "text"):
        raise ConfigError("LOG_FORMAT must be 'json' or 'text'")
    if config["MAX_MESSAGE_CHARS"] < 1:
        raise ConfigError("MAX_MESSAGE_CHARS must be at least 1")
    if len(config["SECRET_KEY"]) < MIN_SECRET_KEY and not (app.debug or app.testing):
        raise ConfigError(
            f"SECRET_KEY must be at least {MIN_SECRET_KEY} characters: a shorter one can be guessed. "
            'Make one with python -c "import secrets; print(secrets.token_hex(32))".'
        )
    if config["INFERENCE_BILLING"] not in BILLING_MODES:
        raise ConfigError(f"INFERENCE_BILLING must be one of {', '.join(BILLING_MODES)}")
    if config["INFERENCE_BILLING"] != "operator" and not config["HF_OAUTH_CLIENT_ID"]:
        raise ConfigError(
            f"INFERENCE_BILLING={config['INFERENCE_BILLING']} needs Sign in with Hugging Face: "
            "set HF_OAUTH_CLIENT_ID and HF_OAUTH_CLIENT_SECRET (README, Sign in with Hugging Face)"
        )
    if config["TRUSTED_PROXY_HOPS"] < 0:
        raise ConfigError("TRUSTED_PROXY_HOPS must be 0 (no proxy) or how many proxies are in front (1 on Heroku)")
    _check_timings(config)
    if not 0 < config["MAX_OPEN_STREAMS_PER_PROCESS"] < config["GUNICORN_THREADS"]:
        raise ConfigError(
            f"MAX_OPEN_STREAMS_PER_PROCESS must be at least 1 and below GUNICORN_THREADS "
            f"({config['GUNICORN_THREADS']}): each open stream holds a thread, and page views, health checks "
            "and log-ins need some left."
        )


def _check_timings(config):
    """Refuse timing settings that are not above 0, or that break a relation between them (naming it)."""
    for name in TIMING_DEFAULTS:
        if not config[name] > 0:
            raise ConfigError(f"{name} must be above 0 (seconds)")
    for names, holds, requirement in TIMING_RELATIONS:
        values = [config[name] for name in names]
        if not holds(*values):
            now = ", ".join(f"{name}={value:g}" for name, value in zip(names, values, strict=True))
            raise ConfigError(f"{requirement}. Now {now}.")


# Who pays for a reply: the operator's HF_TOKEN, the signed-in Hugging Face user, or the user when they can.
BILLING_MODES = ("operator", "user", "user-first")
HF_OAUTH_SCOPES = "openid profile inference-api"


def sign_in_settings():
    """The settings of Sign in with Hugging Face, of another OpenID Connect provider, and of billing."""
    return {
        "HF_OAUTH_ISSUER": (os.environ.get("HF_OAUTH_ISSUER") or "https://huggingface.co").rstrip("/"),
        "HF_OAUTH_CLIENT_ID": os.environ.get("HF_OAUTH_CLIENT_ID") or None,
        "HF_OAUTH_CLIENT_SECRET": os.environ.get("HF_OAUTH_CLIENT_SECRET") or None,
        # read-billing too lets the user pick an organisation to bill.
        "HF_OAUTH_SCOPES": os.environ.get("HF_OAUTH_SCOPES") or HF_OAUTH_SCOPES,
        "OIDC_ISSUER": (os.environ.get("OIDC_ISSUER") or "").rstrip("/") or None,
        "OIDC_CLIENT_ID": os.environ.get("OIDC_CLIENT_ID") or None,
        "OIDC_CLIENT_SECRET": os.environ.get("OIDC_CLIENT_SECRET") or None,
        "OIDC_SCOPES": os.environ.get("OIDC_SCOPES") or "openid profile email",
        "OIDC_LABEL": os.environ.get("OIDC_LABEL") or "Sign in with single sign-on",
        # The callback's address as the provider knows it; by default this request's (behind ProxyFix).
        "OAUTH_REDIRECT_BASE": (os.environ.get("OAUTH_REDIRECT_BASE") or "").rstrip("/") or None,
        "INFERENCE_BILLING": (os.environ.get("INFERENCE_BILLING") or "operator").strip().lower(),
        "TOKEN_ENCRYPTION_KEY": os.environ.get("TOKEN_ENCRYPTION_KEY") or None,
    }


# gunicorn's threads per process (gunicorn.conf.py reads GUNICORN_THREADS with this default too).
DEFAULT_THREADS = 256


# Rate limits in Flask-Limiter's syntax, several separated by ";". "Per user" is per guest or account.
LIMIT_DEFAULTS = {
    "MESSAGE_LIMIT": "10 per minute; 200 per day",  # send, regenerate, retry, edit
    "MESSAGE_LIMIT_PER_IP": "30 per minute; 1000 per day",  # the same, per client IP (several people may share one)
    "SEARCH_LIMIT": "30 per minute",
    "SEARCH_LIMIT_PER_IP": "90 per minute",
    "STREAM_LIMIT": "60 per minute",  # opening a reply's event stream
    "STREAM_LIMIT_PER_IP": "180 per minute",
    "SIGNUP_LIMIT_PER_IP": "5 per hour",  # accounts created
    "SIGN_IN_LIMIT_PER_IP": "30 per minute; 300 per hour",  # a provider's sign-in started or come back
    "COPY_LIMIT": "10 per minute; 100 per day",  # share links made and "Continue this chat": each copies a conversation
    "COPY_LIMIT_PER_IP": "30 per minute; 300 per day",
    "EXPORT_LIMIT": "10 per hour",  # "Download all my data": each reads every stored conversation
    "EXPORT_LIMIT_PER_IP": "30 per hour",
    "RENAME_LIMIT": "30 per minute; 1000 per day",  # each writes the conversation and the index
    "RENAME_LIMIT_PER_IP": "90 per minute; 3000 per day",
    # Files sent whole (/files/ and a share link's /s/.../files/; a 304 is free), per client address: a page's
    # thumbnails are each one the first time it shows them.
    "DOWNLOAD_LIMIT_PER_IP": "200 per minute; 2000 per hour",
}


def _limit(name):
    from limits import parse_many  # Flask-Limiter's parser: a typo fails at start-up, not at the first request

    value = (os.environ.get(name) or "").strip() or LIMIT_DEFAULTS[name]
    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(f"{name} must read like '10 per minute; 200 per day', not {value!r}") from None
    return value


def security_settings():
    """The settings of rate limits, caps, sessions and HTTPS (README, "Security")."""
    threads = _number("GUNICORN_THREADS", DEFAULT_THREADS)
    return {
        # Behind Heroku's router: 1. Only that many X-Forwarded-* values are believed, counted from the right.
        "TRUSTED_PROXY_HOPS": _number("TRUSTED_PROXY_HOPS", 0),
        "FORCE_HTTPS": _flag("FORCE_HTTPS", False),
        "HSTS_SECONDS": _number("HSTS_SECONDS", 365 * 24 * 3600),
        "RATELIMIT_ENABLED": _flag("RATELIMIT_ENABLED", True),
        **{name: _limit(name) for name in LIMIT_DEFAULTS},
        "MAX_REPLIES_AT_ONCE": _number("MAX_REPLIES_AT_ONCE", 2),
        # Replies asked for from one client address at once (fresh guest cookies are new users); None: three
        # times MAX_REPLIES_AT_ONCE (limits/slots/).
        "MAX_REPLIES_AT_ONCE_PER_IP": _number("MAX_REPLIES_AT_ONCE_PER_IP", None),
        # Tokens (the model's pieces) one user, and one client address, may have generated a day; 0: no budget.
        "DAILY_TOKEN_BUDGET": _number("DAILY_TOKEN_BUDGET", 100_000),
        "DAILY_TOKEN_BUDGET_PER_IP": _number("DAILY_TOKEN_BUDGET_PER_IP", 300_000),
        # Event streams open at once in one process (each holds one of its threads), per user, per address,
        # and in all: a fifth of the threads stay free for page views, health checks and log-ins.
        "GUNICORN_THREADS": threads,
        "MAX_OPEN_STREAMS": _number("MAX_OPEN_STREAMS", 20),
        "MAX_OPEN_STREAMS_PER_IP": _number("MAX_OPEN_STREAMS_PER_IP", 60),
        "MAX_OPEN_STREAMS_PER_PROCESS": _number("MAX_OPEN_STREAMS_PER_PROCESS", threads * 4 // 5),
        # Files being sent at once to one client address (each holds a thread until its last byte is sent;
        # they count toward MAX_OPEN_STREAMS_PER_PROCESS too).
        "MAX_DOWNLOADS_PER_IP": _number("MAX_DOWNLOADS_PER_IP", 12),
        "LOGIN_FREE_FAILURES": _number("LOGIN_FREE_FAILURES", 5),
        "LOGIN_MAX_BACKOFF": _number("LOGIN_MAX_BACKOFF", 300),
        "MAX_CONVERSATIONS": _number("MAX_CONVERSATIONS", 1000),
        "MAX_MESSAGES_PER_CONVERSATION": _number("MAX_MESSAGES_PER_CONVERSATION", 2000),
        "SESSION_CHECK_SECONDS": _number("SESSION_CHECK_SECONDS", 30),
        # Attachments (chatbot/attachments/): bytes a file and a message, files a message, pages of a PDF,
        # and bytes one user may upload a day (0: no cap).
        "ATTACHMENT_FILE_BYTES": _number("ATTACHMENT_FILE_BYTES", 10 * 1024 * 1024),
        "ATTACHMENT_MESSAGE_BYTES": _number("ATTACHMENT_MESSAGE_BYTES", 20 * 1024 * 1024),
        "ATTACHMENT_MESSAGE_FILES": _number("ATTACHMENT_MESSAGE_FILES", 4),
        "ATTACHMENT_PDF_PAGES": _number("ATTACHMENT_PDF_PAGES", 50),
        "DAILY_UPLOAD_BYTES": _number("DAILY_UPLOAD_BYTES", 100 * 1024 * 1024),
        # The same for one client address (fresh guest cookies are new users; this bounds them). Copies of files
        # (fork, share link, "Continue this chat") count toward both.
        "DAILY_UPLOAD_BYTES_PER_IP": _number("DAILY_UPLOAD_BYTES_PER_IP", 300 * 1024 * 1024),
    }
