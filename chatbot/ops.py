"""Blueprint "ops": health checks for the platform and for operators.

/healthz says the process is up and touches nothing else. /readyz says
whether storage answers (within seconds) and the model backend is
configured, as JSON that names what is wrong. Neither reads or sets a
session cookie, needs a CSRF token, or shows a secret (no URL, key or token:
only what to fix).
"""

import logging

from flask import Blueprint, current_app, jsonify
from flask.globals import request_ctx

from .llm import get_llm
from .storage import StorageError, get_store

bp = Blueprint("ops", __name__)
logger = logging.getLogger(__name__)


@bp.before_request
def _no_session():
    # A null session is never saved: no Set-Cookie (and no Vary: Cookie), even for a client that sends
    # a session cookie. Flask 3.1 keeps the request's session in _session; a test pins this behaviour.
    request_ctx._session = current_app.session_interface.make_null_session(current_app)


@bp.get("/healthz")
def healthz():
    """The process answers."""
    return _no_store(jsonify(status="ok"))


@bp.get("/readyz")
def readyz():
    """Storage answers and the model backend is configured: 200, else 503 naming what is wrong."""
    checks = {"storage": _storage_check(), "model": _model_check()}
    ready = all(check["ok"] for check in checks.values())
    body = jsonify(status="ready" if ready else "not ready", checks=checks)
    return _no_store(body), 200 if ready else 503


def _storage_check():
    store = get_store()
    kind = store.url.split(":", 1)[0]
    try:
        store.ping()
    except StorageError as error:
        logger.warning("readyz: storage %s: %s", store.url, error)
        return {"ok": False, "kind": kind, "error": str(error)}
    return {"ok": True, "kind": kind}


def _model_check():
    backend = get_llm()
    problem = backend.problem()
    check = {"ok": problem is None, "backend": current_app.config["LLM_BACKEND"]}
    if problem:
        check["error"] = problem
    models = backend.available_models()
    check["default_model"] = models[0] if models else None
    unavailable = backend.unavailable_models()
    if unavailable:
        check["unavailable_models"] = sorted(unavailable)
    return check


def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response
