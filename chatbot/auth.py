"""Blueprint "auth": who is chatting. A guest id in the signed session, or an account.

Accounts are stored at accounts/{username}.json = {uid, password_hash, created_at, session_version}.
Signing up gives the account a fresh uid and moves the guest's conversations to it, so a copy of
the old guest cookie reads nothing. The session is cleared and reissued at sign-up, log-in and
log-out. "Log out everywhere" raises session_version: every session and remember-me cookie
carries the version it was issued with and is refused once it differs (checked against storage
at most every SESSION_CHECK_SECONDS per account and process).
"""

import functools
import re
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
MIN_PASSWORD = 8
# Hashing cost grows with the input: a cap keeps a megabyte "password" from costing the server.
MAX_PASSWORD = 128


def valid_username(username):
    """True when username has the shape usernames are allowed to have."""
    return bool(USERNAME_PATTERN.fullmatch(username or ""))


class Account(UserMixin):
    """A signed-in user. The session carries uid, username and session version: no storage read per request."""

    def __init__(self, uid, username, version=0):
        self.uid = uid
        self.username = username
        self.version = version

    def get_id(self):
        """Flask-Login's session (and remember-me cookie) value."""
        return f"{self.uid}:{self.username}:{self.version}"


class SessionVersions:
    """Each account's (uid, session version), read from storage at most every `seconds` (per process).

    The uid is part of it: a name deleted and then taken by someone else is another account, whose
    versions start at 0 again, so the version alone would let the old account's cookies in.
    """

    def __init__(self, seconds):
        self.seconds = seconds
        self._known = {}  # username -> ((uid, version) or None, read at)
        self._lock = threading.Lock()

    def current(self, store, username):
        """The account's (uid, session version), or None when there is no such account."""
        with self._lock:
            stamp, read_at = self._known.get(username, (None, -float("inf")))
        if time.monotonic() - read_at < self.seconds:
            return stamp
        account, _ = read_json(store, account_key(username))
        stamp = None if account is None else (account["uid"], account.get("session_version", 0))
        self.remember(username, stamp)
        return stamp

    def remember(self, username, stamp):
        """This process changed or read the account ((uid, version), or None when it is gone): use it at once."""
        with self._lock:
            self._known[username] = (stamp, time.monotonic())


@login_manager.user_loader
def _load_account(value):
    uid, username, version = (value.split(":") + ["", ""])[:3]
    if not (is_valid_id(uid) and valid_username(username) and version.isdigit()):
        return None  # includes sessions issued before versions existed: they log in again
    if current_app.extensions["session_versions"].current(get_store(), username) != (uid, int(version)):
        return None  # logged out everywhere, or the account is gone (its name maybe taken by another)
    return Account(uid, username, int(version))


def init_app(app):
    """Set up Flask-Login for the app, with remember-me cookies that are HttpOnly, SameSite and revocable."""
    app.config.setdefault("REMEMBER_COOKIE_HTTPONLY", True)
    app.config.setdefault("REMEMBER_COOKIE_SAMESITE", "Lax")
    app.config.setdefault("REMEMBER_COOKIE_DURATION", 90 * 24 * 3600)
    app.extensions["session_versions"] = SessionVersions(app.config["SESSION_CHECK_SECONDS"])
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


def create_account(store, username, password, uid):
    """Create an account owning uid; return False when the username is taken."""
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
            "session_version": 0,
        }

    update_json(store, account_key(username), create)
    return created


@functools.cache
def _dummy_hash():
    # Checked when there is no such account, so that a wrong username costs as long as a wrong password.
    return generate_password_hash(new_id())


def check_account(store, username, password):
    """Return the Account when the password matches, else None; as slow whether or not the username exists."""
    account = None
    if valid_username(username) and len(password) <= MAX_PASSWORD:
        account, _ = read_json(store, account_key(username))
    password_hash = account["password_hash"] if account else _dummy_hash()
    matches = check_password_hash(password_hash, password[:MAX_PASSWORD])
    if account is None or not matches:
        return None
    return Account(account["uid"], username, account.get("session_version", 0))


def end_all_sessions(store, username):
    """Log the account out everywhere: every session and remember-me cookie issued so far stops working."""

    def bump(account):
        if account is None:
            return None
        return {**account, "session_version": account.get("session_version", 0) + 1}

    account = update_json(store, account_key(username), bump)
    if account is not None:
        current_app.extensions["session_versions"].remember(username, (account["uid"], account["session_version"]))


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
            store, uid = get_store(), new_id()
            if create_account(store, username, password, uid):
                current_app.extensions["session_versions"].remember(username, (uid, 0))
                guest_uid = session.get("guest_uid")
                if is_valid_id(guest_uid):
                    move_conversations(store, guest_uid, uid)
                _start_session(Account(uid, username))
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
        account = check_account(get_store(), username, request.form.get("password", ""))
        if account is not None:
            limits.login_succeeded(username)
            target = safe_next(request.args.get("next"))
            _start_session(account)
            return redirect(target)
        limits.login_failed(username)
        error = "Wrong username or password."
    status = 400 if error else 200
    return render_template("auth.html", mode="login", error=error), status


@bp.post("/logout")
def logout():
    """Sign out; the browser becomes a new guest."""
    session.clear()
    logout_user()  # after clear(): it leaves the mark that deletes the remember-me cookie
    flash("You are signed out.")
    return redirect(url_for("chat.index"))


@bp.post("/logout-everywhere")
def logout_everywhere():
    """Sign out every browser and device of this account, this one included."""
    if current_user.is_authenticated:
        end_all_sessions(get_store(), current_user.username)
    session.clear()
    logout_user()
    flash("You are signed out everywhere.")
    return redirect(url_for("chat.index"))
