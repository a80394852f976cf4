"""Blueprint "auth": who is chatting. A guest id in the signed session, or an account.

Accounts are stored at accounts/{username}.json = {uid, password_hash, created_at, sessions}.
Signing up gives the account a fresh uid and moves the guest's conversations to it, so a copy of
the old guest cookie reads nothing. The session is cleared and reissued at sign-up, log-in and
log-out. Each sign-in gets a random session id, recorded in the account's `sessions` (the newest
SESSIONS_KEPT) and carried by the session and the remember-me cookie: "Log out" takes that id off
the list, "Log out everywhere" empties it, and a cookie whose id is not listed signs in nobody.
The list is cached per account and process, re-read from storage at most every
SESSION_CHECK_SECONDS (or at once for an id the process has not seen listed).
"""

import functools
import re
import secrets
import threading
import time
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from werkzeug.security import check_password_hash, generate_password_hash

from . import limits
from .conversations import Conversations, is_valid_id, new_id, now
from .storage import get_store, read_json, update_json

bp = Blueprint("auth", __name__, url_prefix="/auth")
login_manager = LoginManager()

USERNAME_PATTERN = re.compile(r"[a-z0-9_.-]{3,32}")
SESSION_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}")
MIN_PASSWORD = 8
# Hashing cost grows with the input: a cap keeps a megabyte "password" from costing the server.
MAX_PASSWORD = 128
# Sign-ins an account keeps: each adds its id to the account document, so the oldest go past this many.
SESSIONS_KEPT = 30
# What Flask-Login's session keys are (its remember-me cookie is cleared through "_remember").
LOGIN_SESSION_KEYS = ("_user_id", "_fresh", "_id")


def valid_username(username):
    """True when username has the shape usernames are allowed to have."""
    return bool(USERNAME_PATTERN.fullmatch(username or ""))


def new_session_id():
    """A random id for one sign-in (128 bits)."""
    return secrets.token_urlsafe(16)


class Account(UserMixin):
    """A signed-in user. The session carries uid, username and session id: no storage read per request."""

    def __init__(self, uid, username, session_id=None):
        self.uid = uid
        self.username = username
        self.session_id = session_id

    def get_id(self):
        """Flask-Login's session (and remember-me cookie) value."""
        return f"{self.uid}:{self.username}:{self.session_id}"


class AccountSessions:
    """Each account's uid and signed-in session ids, read from storage at most every `seconds` (per process).

    The uid is part of it: a name deleted and then taken by someone else is another account. An id the
    cached list lacks is looked up again at once (it may have signed in on another process a moment ago);
    a browser whose id is refused forgets it (see _signed_out), so that costs one read, once.
    """

    def __init__(self, seconds):
        self.seconds = seconds
        self._known = {}  # username -> ((uid, frozenset of session ids) or None, read at)
        self._lock = threading.Lock()

    def is_live(self, store, username, uid, session_id):
        """True when the account username is uid and session_id is one of its sessions."""
        with self._lock:
            stamp, read_at = self._known.get(username, (None, -float("inf")))
        if time.monotonic() - read_at >= self.seconds or not _holds(stamp, uid, session_id):
            account, _ = read_json(store, account_key(username))
            stamp = self.remember(username, account)
        return _holds(stamp, uid, session_id)

    def remember(self, username, account):
        """This process read or wrote the account document (None: it is gone): use it at once; return its stamp."""
        stamp = None if account is None else (account["uid"], frozenset(account.get("sessions", ())))
        with self._lock:
            self._known[username] = (stamp, time.monotonic())
        return stamp


def _holds(stamp, uid, session_id):
    return stamp is not None and stamp[0] == uid and session_id in stamp[1]


def _signed_out():
    """Forget a session that signs in nobody any more, so the browser stops presenting it (and costing a read)."""
    for key in LOGIN_SESSION_KEYS:
        session.pop(key, None)
    if current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token") in request.cookies:
        session["_remember"] = "clear"  # Flask-Login deletes the remember-me cookie in its answer
    return None


@login_manager.user_loader
def _load_account(value):
    uid, username, session_id = (value.split(":") + ["", ""])[:3]
    if not (is_valid_id(uid) and valid_username(username) and SESSION_ID_PATTERN.fullmatch(session_id)):
        return _signed_out()  # includes sessions issued before session ids existed: they log in again
    if not current_app.extensions["account_sessions"].is_live(get_store(), username, uid, session_id):
        return _signed_out()  # logged out, everywhere or here, or the account is gone (its name maybe taken)
    return Account(uid, username, session_id)


def init_app(app):
    """Set up Flask-Login for the app, with remember-me cookies that are HttpOnly, SameSite and revocable."""
    app.config.setdefault("REMEMBER_COOKIE_HTTPONLY", True)
    app.config.setdefault("REMEMBER_COOKIE_SAMESITE", "Lax")
    app.config.setdefault("REMEMBER_COOKIE_DURATION", 90 * 24 * 3600)
    app.extensions["account_sessions"] = AccountSessions(app.config["SESSION_CHECK_SECONDS"])
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"


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


def account_key(username):
    """The storage key of the account named username."""
    return f"accounts/{username}.json"


def create_account(store, username, password, uid, session_id=None):
    """Create an account owning uid, signed in as session_id if given; return False when the username is taken."""
    created = False

    def create(existing):
        nonlocal created
        if existing is not None:
            created = False
            return None
        created = True
        return {
            "uid": uid,
            "password_hash": generate_password_hash(password),
            "created_at": now(),
            "sessions": [session_id] if session_id else [],
        }

    update_json(store, account_key(username), create)
    return created


@functools.cache
def _dummy_hash():
    # Checked when there is no such account, so that a wrong username costs as long as a wrong password.
    return generate_password_hash(new_id())


def check_account(store, username, password):
    """Return the Account when the password matches, else None; as slow whether or not the username exists.

    The Account has no session yet: open_session gives it one.
    """
    account = None
    if valid_username(username) and len(password) <= MAX_PASSWORD:
        account, _ = read_json(store, account_key(username))
    password_hash = account["password_hash"] if account else _dummy_hash()
    matches = check_password_hash(password_hash, password[:MAX_PASSWORD])
    if account is None or not matches:
        return None
    return Account(account["uid"], username)


def _change_sessions(store, username, uid, change):
    """Apply change(list of session ids) -> list to the account uid's sessions; return the stored account or None."""

    def apply(account):
        if account is None or account["uid"] != uid:
            return None  # deleted meanwhile (its name maybe taken again): nothing of ours to change
        kept = {key: value for key, value in account.items() if key != "session_version"}  # the former scheme
        return {**kept, "sessions": change(list(account.get("sessions", [])))}

    account = update_json(store, account_key(username), apply)
    current_app.extensions["account_sessions"].remember(username, account)
    return account if account is not None and account["uid"] == uid else None


def open_session(store, account):
    """Record a new sign-in of account (the newest SESSIONS_KEPT are kept); return it with its session id, or None."""
    session_id = new_session_id()
    stored = _change_sessions(store, account.username, account.uid, lambda ids: (ids + [session_id])[-SESSIONS_KEPT:])
    return Account(account.uid, account.username, session_id) if stored is not None else None


def end_session(store, account):
    """Log this sign-in out: its session and remember-me cookie, and any copy of them, stop working."""
    _change_sessions(
        store, account.username, account.uid, lambda ids: [other for other in ids if other != account.session_id]
    )


def end_all_sessions(store, account):
    """Log the account out everywhere: every session and remember-me cookie issued so far stops working."""
    _change_sessions(store, account.username, account.uid, lambda ids: [])


def move_conversations(store, from_uid, to_uid):
    """Copy every stored object of user from_uid to to_uid, then delete the originals."""
    prefix, target = f"users/{from_uid}/", f"users/{to_uid}/"
    keys = list(store.keys(prefix))
    for key in keys:
        found = store.read(key)
        if found is not None:
            store.write(target + key[len(prefix) :], found[0], create=True)
    for key in keys:
        store.delete(key)


def _validate(username, password):
    if not valid_username(username):
        return "Usernames are 3 to 32 characters: lowercase letters, digits, '.', '_' or '-'."
    if len(password) < MIN_PASSWORD:
        return f"Passwords have at least {MIN_PASSWORD} characters."
    if len(password) > MAX_PASSWORD:
        return f"Passwords have at most {MAX_PASSWORD} characters."
    return None


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


@bp.context_processor
def _password_rules():
    return {"min_password": MIN_PASSWORD, "max_password": MAX_PASSWORD}


def _start_session(account):
    """A fresh session for account: nothing of what the browser held before survives."""
    session.clear()
    login_user(account, remember=True)
    session.permanent = True


@bp.route("/register", methods=["GET", "POST"])
@limits.limit_signups
def register():
    """Create an account; a guest's conversations move to it."""
    if current_user.is_authenticated:
        return render_template(
            "auth.html",
            mode="register",
            signed_in=True,
            error="You are signed in already. Log out to create another account.",
        ), 400
    error = None
    if request.method == "POST":
        username = request.form.get("username", "").strip().lower()
        password = request.form.get("password", "")
        error = _validate(username, password)
        if error is None:
            store, uid, session_id = get_store(), new_id(), new_session_id()
            if create_account(store, username, password, uid, session_id):
                current_app.extensions["account_sessions"].remember(username, {"uid": uid, "sessions": [session_id]})
                guest_uid = session.get("guest_uid")
                if is_valid_id(guest_uid):
                    move_conversations(store, guest_uid, uid)
                _start_session(Account(uid, username, session_id))
                return redirect(url_for("chat.index"))
            error = "That username is taken."
    status = 400 if error else 200
    return render_template("auth.html", mode="register", error=error), status


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in with a username and password; failures slow the next attempts down."""
    error = None
    if request.method == "POST":
        username = request.form.get("username", "").strip().lower()[:64]
        limits.require_login_allowed(username, "Too many failed log-ins.")
        store = get_store()
        account = check_account(store, username, request.form.get("password", ""))
        if account is None:
            limits.login_failed(username)
            error = "Wrong username or password."
        else:
            limits.login_succeeded(username)
            signed_in = open_session(store, account)  # None only when the account was deleted meanwhile
            if signed_in is not None:
                target = safe_next(request.args.get("next"))
                _start_session(signed_in)
                return redirect(target)
            error = "Wrong username or password."
    status = 400 if error else 200
    return render_template("auth.html", mode="login", error=error), status


@bp.post("/logout")
def logout():
    """Sign out; the browser becomes a new guest, and this sign-in's cookies, copies included, stop working."""
    if current_user.is_authenticated:
        end_session(get_store(), current_user._get_current_object())
    session.clear()
    logout_user()  # after clear(): it leaves the mark that deletes the remember-me cookie
    flash("You are signed out.")
    return redirect(url_for("chat.index"))


@bp.post("/logout-everywhere")
def logout_everywhere():
    """Sign out every browser and device of this account, this one included."""
    if current_user.is_authenticated:
        end_all_sessions(get_store(), current_user._get_current_object())
    session.clear()
    logout_user()
    flash("You are signed out everywhere.")
    return redirect(url_for("chat.index"))
