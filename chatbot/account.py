"""Blueprint "account": a user's own data. Download all of it, delete the conversations, delete the account.

Plain pages and forms (CSRF-protected), so all of it works without JavaScript.
"""

from datetime import datetime, timezone

from flask import Blueprint, Response, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, logout_user

from . import identities, limits, tokens, userdata
from .accounts import check_account
from .identity import account_sessions, current_uid, user_required
from .storage import get_store

bp = Blueprint("account", __name__, url_prefix="/account")


def _username():
    return current_user.username if current_user.is_authenticated else None


@bp.get("/")
@user_required
def page():
    """What is stored about you, and what you can do with it."""
    count = len(userdata.user_index(get_store(), current_uid()))
    return render_template("account.html", confirm=None, conversation_count=count, **_connections())


def _connections():
    """The providers connected to the account, whether it has a password, and its Hugging Face billing."""
    if not current_user.is_authenticated:
        return {"connected": {}, "has_password": False, "billing": None}
    store = get_store()
    connected, has_password = identities.connected(store, current_user.username)
    return {
        "connected": {entry["provider"]: entry for entry in connected},
        "has_password": has_password,
        "billing": tokens.stored(store, current_user.uid),
    }


@bp.post("/bill-to")
@login_required
def bill_to():
    """Bill replies to one of the organisations Hugging Face says the user can bill, or to the user."""
    organisation = request.form.get("organisation") or None
    if tokens.set_bill_to(get_store(), current_user.uid, organisation):
        flash(f"Replies are billed to {organisation or 'your own account'}.")
    else:
        flash("That organisation cannot be billed: sign in with Hugging Face again to refresh the list.")
    return redirect(url_for("account.page"))


@bp.get("/export.zip")
@user_required
@limits.limit_exports
def export():
    """Every conversation as JSON in one zip, streamed as it is read from storage."""
    archive = userdata.export_zip(get_store(), current_uid(), _username())
    name = f"chatbot-data-{datetime.now(timezone.utc):%Y-%m-%d}.zip"
    return Response(
        archive,
        mimetype="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


@bp.route("/delete-conversations", methods=["GET", "POST"])
@user_required
def delete_conversations():
    """Confirm, then delete every conversation of the current user."""
    store = get_store()
    if request.method == "POST":
        count = userdata.delete_user_data(store, current_uid())
        flash(f"Deleted {count} conversation{'s' if count != 1 else ''}.")
        return redirect(url_for("chat.index"))
    count = len(userdata.user_index(store, current_uid()))
    return render_template("account.html", confirm="conversations", conversation_count=count)


@bp.route("/delete", methods=["GET", "POST"])
@login_required
def delete_account():
    """Confirm with the password, then delete the account and all its conversations."""
    store = get_store()
    error = None
    if request.method == "POST":
        # A password check is a guess like a log-in's: the same back-off, so it is no oracle (nor free hashing).
        limits.require_login_allowed(current_user.username, "Too many wrong passwords.")
        if not _confirmed(store):
            limits.login_failed(current_user.username)
            error = "That is not right. Nothing was deleted."
        else:
            userdata.delete_account(store, current_user.username)
            account_sessions().remember(current_user.username, None)  # gone, at once
            session.clear()
            logout_user()  # after clear(): it leaves the mark that deletes the remember-me cookie
            flash("Your account and its conversations are deleted.")
            return redirect(url_for("chat.index"))
    count = len(userdata.user_index(store, current_uid()))
    return render_template(
        "account.html", confirm="account", conversation_count=count, error=error, **_connections()
    ), 400 if error else 200


def _confirmed(store):
    """The deletion is confirmed: with the password, or, for an account without one, by typing its username."""
    if identities.connected(store, current_user.username)[1]:
        return check_account(store, current_user.username, request.form.get("password", "")) is not None
    return request.form.get("username", "").strip().lower() == current_user.username
