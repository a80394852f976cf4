"""Blueprint "sidebar": the list of the user's conversations."""

from flask import Blueprint, render_template, request

from .auth import current_conversations, user_required

bp = Blueprint("sidebar", __name__, url_prefix="/sidebar")


@bp.get("/")
@user_required
def conversation_list():
    """The conversation list fragment, newest first (one storage read)."""
    return render_template("_conversation_list.html", entries=current_conversations().index(),
                           current_id=request.args.get("current"))
