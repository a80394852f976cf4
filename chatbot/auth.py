"""Blueprint "auth": who is chatting. A guest id in the signed session, or an account.

Accounts are stored at accounts/{username}.json = {uid, password_hash, created_at}.
Registering keeps the guest's conversations: the account takes over the guest's uid.
"""

import functools
import re

from flask import (Blueprint, abort, current_app, flash, redirect, render_template, request, session,
                   url_for)
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from werkzeug.security import check_password_hash, generate_password_hash

from .conversations import Conversations, is_valid_id, new_id, now
from .storage import get_store, read_json, update_json

bp = Blueprint("auth", __name__, url_prefix="/auth")
login_manager = LoginManager()

USERNAME_PATTERN = re.compile(r"^[a-z0-9_.-]{3,32}$")
MIN_PASSWORD = 8


class Account(UserMixin):
    """A signed-in user. The session carries uid and username, so no storage read per request."""

    def __init__(self, uid, username):
        self.uid = uid
        self.username = username

    def get_id(self):
        """Flask-Login's session value."""
        return f"{self.uid}:{self.username}"


@login_manager.user_loader
def _load_account(value):
    uid, _, username = value.partition(":")
    if is_valid_id(uid) and USERNAME_PATTERN.match(username):
        return Account(uid, username)
    return None


def init_app(app):
    """Set up Flask-Login for the app."""
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
    return Conversations(get_store(), uid)


def user_required(view):
    """Send a visitor to the login page when guests are not allowed."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if current_uid() is None:
            return redirect(url_for("auth.login", next=request.full_path))
        return view(*args, **kwargs)

    return wrapped


def _account_key(username):
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
        return {"uid": uid, "password_hash": generate_password_hash(password), "created_at": now()}

    update_json(store, _account_key(username), create)
    return created


def check_account(store, username, password):
    """Return the Account when the password matches, else None."""
    if not USERNAME_PATTERN.match(username):
        return None
    account, _ = read_json(store, _account_key(username))
    if account is None or not check_password_hash(account["password_hash"], password):
        return None
    return Account(account["uid"], username)


def _validate(username, password):
    if not USERNAME_PATTERN.match(username):
        return "Usernames are 3 to 32 characters: lowercase letters, digits, '.', '_' or '-'."
    if len(password) < MIN_PASSWORD:
        return f"Passwords have at least {MIN_PASSWORD} characters."
    return None


def _safe_next():
    target = request.args.get("next", "")
    # Only local paths: never an open redirect to another site.
    return target if target.startswith("/") and not target.startswith("//") else url_for("chat.index")


@bp.route("/register", methods=["GET", "POST"])
def register():
    """Create an account; a guest's conversations come along."""
    error = None
    if request.method == "POST":
        username = request.form.get("username", "").strip().lower()
        password = request.form.get("password", "")
        error = _validate(username, password)
        if error is None:
            uid = current_uid() or new_id()
            if create_account(get_store(), username, password, uid):
                session.pop("guest_uid", None)
                login_user(Account(uid, username), remember=True)
                return redirect(url_for("chat.index"))
            error = "That username is taken."
    status = 400 if error else 200
    return render_template("auth.html", mode="register", error=error), status


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in with a username and password."""
    error = None
    if request.method == "POST":
        username = request.form.get("username", "").strip().lower()
        account = check_account(get_store(), username, request.form.get("password", ""))
        if account is not None:
            login_user(account, remember=True)
            return redirect(_safe_next())
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
