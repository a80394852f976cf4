"""Who is chatting: a guest id in the signed session, or an account signed in through Flask-Login.

A session or remember-me cookie signs in its account only while its session id is listed in the
account (accounts.AccountSessions, cached per process for SESSION_CHECK_SECONDS, or until another
process says through Redis that it changed); one that is not is forgotten by the browser. Views ask
current_uid() or current_conversations(), and wrap themselves in user_required when guests may not be
allowed.
"""

import functools
from datetime import date
from urllib.parse import urlsplit

from flask import abort, current_app, redirect, request, session, url_for
from flask_login import LoginManager, current_user, login_user

from .accounts import Account, AccountSessions, SessionChanges, parse_session
from .conversations import Conversations, is_valid_id, new_id
from .storage import get_store

login_manager = LoginManager()
# What Flask-Login's session keys are (its remember-me cookie is cleared through "_remember").
LOGIN_SESSION_KEYS = ("_user_id", "_fresh", "_id")


def init_app(app):
    """Set up Flask-Login for the app, with remember-me cookies that are HttpOnly, SameSite and revocable."""
    app.config.setdefault("REMEMBER_COOKIE_HTTPONLY", True)
    app.config.setdefault("REMEMBER_COOKIE_SAMESITE", "Lax")
    app.config.setdefault("REMEMBER_COOKIE_DURATION", 90 * 24 * 3600)
    seconds, pool = app.config["SESSION_CHECK_SECONDS"], app.extensions.get("redis_pool")
    # With Redis, several processes: a log-out through one reaches the others at once.
    changes = SessionChanges(pool, seconds) if pool is not None else None
    app.extensions["account_sessions"] = AccountSessions(seconds, changes)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    app.before_request(_refresh_session_daily)


def _refresh_session_daily():
    """Mark a lasting session changed once a day, so its cookie (and its year-long expiry) is renewed that often:
    with SESSION_REFRESH_EACH_REQUEST off (create_app), the cookie is not signed again on every answer."""
    today = date.today().toordinal()
    if session.permanent and session.get("day") != today:
        session["day"] = today


def account_sessions():
    """This app's AccountSessions: record, end and check sign-ins through it."""
    return current_app.extensions["account_sessions"]


def _signed_out():
    """Forget a session that signs in nobody any more, so the browser stops presenting it (and costing a read)."""
    for key in LOGIN_SESSION_KEYS:
        session.pop(key, None)
    if current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token") in request.cookies:
        session["_remember"] = "clear"  # Flask-Login deletes the remember-me cookie in its answer
    return None


@login_manager.user_loader
def _load_account(value):
    parsed = parse_session(value)
    if parsed is None:
        return _signed_out()  # includes sessions issued before session ids existed: they log in again
    uid, username, session_id = parsed
    if not account_sessions().is_live(get_store(), username, uid, session_id):
        return _signed_out()  # logged out, everywhere or here, or the account is gone (its name maybe taken)
    return Account(uid, username, session_id)


def current_uid():
    """The id whose conversations this request may see, or None when guests are not allowed."""
    if current_user.is_authenticated:
        return current_user.uid
    if not current_app.config["ALLOW_GUESTS"]:
        return None
    uid = session.get("guest_uid")
    if not is_valid_id(uid):
        uid = new_id()
        session["guest_uid"] = uid
        session.permanent = True
    return uid


def current_conversations():
    """The current user's conversations (a guest's or an account's)."""
    uid = current_uid()
    if uid is None:
        abort(401)
    config = current_app.config
    return Conversations(
        get_store(),
        uid,
        max_conversations=config["MAX_CONVERSATIONS"],
        max_messages=config["MAX_MESSAGES_PER_CONVERSATION"],
    )


def user_required(view):
    """Send a visitor to the login page when guests are not allowed."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if current_uid() is None:
            return redirect(url_for("auth.login", next=request.full_path))
        return view(*args, **kwargs)

    return wrapped


def safe_next(target):
    """target when it is a path on this site, else the chat's home: never a redirect to another site."""
    home = url_for("chat.index")
    if not target or not target.startswith("/") or any(ord(char) < 32 or ord(char) == 127 for char in target):
        return home
    # Browsers read "\" as "/" and drop tabs and newlines, so "/\evil" and "/%09/evil" can mean "//evil".
    normalised = target.replace("\\", "/")
    parts = urlsplit(normalised)
    if parts.scheme or parts.netloc or normalised.startswith("//"):
        return home
    return target


def start_session(account):
    """A fresh session for account: nothing of what the browser held before survives."""
    session.clear()
    login_user(account, remember=True)
    session.permanent = True
