"""Logs an operator can read: one line per request and one per reply.

LOG_FORMAT=json (the default outside debug mode) writes one JSON object a
line, which Heroku's log drains and `heroku logs | jq` read; LOG_FORMAT=text
writes plain lines for `make run`. The lines carry ids, timings, outcomes and
a hash of the user id, never anything a user or the model wrote.
"""

import hashlib
import logging
import re
import sys
import time
import uuid

from flask import g, request
from flask.globals import request_ctx
from gunicorn import glogging
from pythonjsonlogger.json import JsonFormatter

from . import config

request_logger = logging.getLogger("chatbot.request")
reply_logger = logging.getLogger("chatbot.reply")

# Heroku's router sets X-Request-ID (a UUID); anything else odd-looking is replaced, not logged.
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{8,200}$")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = ["asctime", "levelname", "name", "message"]


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record is emitted (test runners swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def formatter(log_format):
    """The formatter of one log line: a JSON object, or readable text."""
    if log_format == "json":
        return JsonFormatter(JSON_FIELDS, rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})
    return logging.Formatter(TEXT_FORMAT)


def _settings_format():
    """LOG_FORMAT as the app's settings read it, for gunicorn's master, which has no app to ask."""
    try:
        chosen = config.from_environment()["LOG_FORMAT"]
    except config.ConfigError:
        chosen = None  # another setting is malformed: the app says which when it starts
    return chosen or "json"


class GunicornLogger(glogging.Logger):
    """gunicorn's own lines (start, workers, errors) in the app's format: JSON unless LOG_FORMAT=text."""

    def setup(self, cfg):
        """Set gunicorn's handlers up, then give its error log the app's formatter."""
        super().setup(cfg)
        if _settings_format() == "json":
            for handler in self.error_log.handlers:
                handler.setFormatter(formatter("json"))


def configure(log_format):
    """Send log records to stderr at INFO, one JSON object or one readable line each.

    Called once per app; the handler is shared by the process, so building
    several apps (tests) does not stack handlers.
    """
    root = logging.getLogger()
    handler = next((each for each in root.handlers if isinstance(each, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        root.addHandler(handler)
    handler.setFormatter(formatter(log_format))
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    # The HTTP client logs every request at INFO (URLs included); the app's own lines say what matters.
    for noisy in ("httpx2", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def user_hash(uid):
    """A short stand-in for a user id: groups one user's lines without naming the user.

    The ids are random (96 bits), so the hash cannot be reversed by guessing.
    """
    if not uid:
        return None
    return hashlib.sha256(uid.encode()).hexdigest()[:12]


def request_id():
    """The current request's id: Heroku's X-Request-ID when it looks like one, else a new UUID."""
    if "request_id" not in g:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if REQUEST_ID_PATTERN.match(given) else str(uuid.uuid4())
    return g.request_id


def _current_uid():
    # Only a user this request already looked up: logging must not load a session, or set a
    # cookie, for a request that never used one (health checks, static files).
    user = g.get("_login_user")
    if user is not None and getattr(user, "is_authenticated", False):
        return user.uid
    # Read without the `session` proxy, which would mark the session accessed (and add Vary: Cookie).
    raw = request_ctx._session
    if raw is not None and raw.accessed:
        return raw.get("guest_uid")
    return None


def _started():
    g.log_started = time.perf_counter()
    request_id()


def _finished(response):
    rid = request_id()
    response.headers.setdefault("X-Request-ID", rid)
    started = g.get("log_started", time.perf_counter())
    fields = {
        "event": "request",
        "request_id": rid,
        "method": request.method,
        "route": request.url_rule.rule if request.url_rule else None,
        "status": response.status_code,
        "user": user_hash(_current_uid()),
    }
    shown_path = fields["route"] or request.path
    level = logging.ERROR if response.status_code >= 500 else logging.INFO

    def log_line():
        # Logged when the server closes the response, so a streamed reply's line has its whole length.
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        request_logger.log(
            level,
            "%s %s %s %.1f ms",
            fields["method"],
            shown_path,
            fields["status"],
            duration_ms,
            extra={**fields, "duration_ms": duration_ms},
        )

    response.call_on_close(log_line)
    return response


def outcome_of(error):
    """The outcome a failed reply is logged with: its error type in snake case (RateLimited -> rate_limited)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()


def log_reply(*, model, ttft_ms, pieces, duration_ms, outcome, uid=None, **extra):
    """Log one line for a finished reply job.

    outcome is "done", "stopped", "interrupted" or the error's kind (e.g.
    "rate_limited", "unavailable", "timed_out", "rejected"). ttft_ms is the
    time to the first piece (None when there was none); pieces counts the
    text pieces the model streamed. extra takes more ids (conversation,
    message), never text.
    """
    fields = {
        "event": "reply",
        "model": model,
        "ttft_ms": ttft_ms,
        "pieces": pieces,
        "duration_ms": duration_ms,
        "outcome": outcome,
        "user": user_hash(uid),
        **extra,
    }
    level = logging.INFO if outcome in ("done", "stopped", "interrupted") else logging.WARNING
    first = "-" if ttft_ms is None else f"{ttft_ms:.0f} ms"
    reply_logger.log(
        level,
        "reply %s from %s: first piece %s, %s pieces, %.0f ms",
        outcome,
        model,
        first,
        pieces,
        duration_ms,
        extra=fields,
    )


def init_app(app):
    """Choose the log format and log every request."""
    log_format = app.config.get("LOG_FORMAT") or ("text" if app.debug else "json")
    app.config["LOG_FORMAT"] = log_format
    configure(log_format)
    app.before_request(_started)
    app.after_request(_finished)
