"""Blueprint "auth": sign up, log in, log out (here or everywhere).

The session is cleared and reissued at sign-up, log-in and log-out. Signing up gives the account a
fresh uid and moves the guest's conversations to it, so a copy of the old guest cookie reads nothing.
"Log out" ends this sign-in's session, "Log out everywhere" every one (accounts.AccountSessions).
"""

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, logout_user

from . import limits, tokens
from .accounts import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    Account,
    check_account,
    create_account,
    move_conversations,
    new_session_id,
    validate,
)
from .conversations import is_valid_id, new_id
from .identity import account_sessions, safe_next, start_session
from .storage import get_store

bp = Blueprint("auth", __name__, url_prefix="/auth")


@bp.context_processor
def _password_rules():
    return {"min_password": MIN_PASSWORD, "max_password": MAX_PASSWORD}


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
        error = validate(username, password)
        if error is None:
            store, uid, session_id = get_store(), new_id(), new_session_id()
            if create_account(store, username, password, uid, session_id):
                account_sessions().remember(username, {"uid": uid, "sessions": [session_id]})
                guest_uid = session.get("guest_uid")
                if is_valid_id(guest_uid):
                    move_conversations(store, guest_uid, uid)
                start_session(Account(uid, username, session_id))
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
            signed_in = account_sessions().open(store, account)  # None only when the account was deleted meanwhile
            if signed_in is not None:
                target = safe_next(request.args.get("next"))
                start_session(signed_in)
                return redirect(target)
            error = "Wrong username or password."
    status = 400 if error else 200
    return render_template("auth.html", mode="login", error=error), status


@bp.post("/logout")
def logout():
    """Sign out; the browser becomes a new guest, and this sign-in's cookies, copies included, stop working."""
    if current_user.is_authenticated:
        account_sessions().end(get_store(), current_user._get_current_object())
    session.clear()
    logout_user()  # after clear(): it leaves the mark that deletes the remember-me cookie
    flash("You are signed out.")
    return redirect(url_for("chat.index"))


@bp.post("/logout-everywhere")
def logout_everywhere():
    """Sign out every browser and device of this account, this one included."""
    if current_user.is_authenticated:
        account_sessions().end_all(get_store(), current_user._get_current_object())
        tokens.delete(get_store(), current_user.uid)  # a Hugging Face user's tokens go with every session
    session.clear()
    logout_user()
    flash("You are signed out everywhere.")
    return redirect(url_for("chat.index"))
