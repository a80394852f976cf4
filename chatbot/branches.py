"""Blueprint "branches": what the conversation tree adds to the chat: switching versions, forking, and the
conversation's own instructions. Editing and regenerating (which add versions) stay in chat.py."""

from flask import Blueprint, redirect, render_template, request, url_for

from . import htmx, limits
from .conversations import MAX_INSTRUCTIONS_CHARS
from .identity import current_conversations, user_required
from .lengths import characters, form_text, length
from .pages import chat_page

bp = Blueprint("branches", __name__)


@bp.post("/c/<cid>/messages/<mid>/switch")
@user_required
def switch(cid, mid):
    """Show message mid's version: the path down to its newest leaf, stored, so a reload shows it too."""
    conversation = current_conversations().switch(cid, mid)
    if not htmx.is_htmx():
        return redirect(url_for("chat.conversation", cid=cid, _anchor=f"m-{mid}"), 303)
    # The pane again; the pressed button keeps the focus and the new "2 / 3" is announced.
    return chat_page(conversation, switched=mid, switched_from=request.form.get("from"))


@bp.post("/c/<cid>/messages/<mid>/fork")
@user_required
@limits.limit_copies
def fork(cid, mid):
    """Fork from here: a new conversation holding the path up to message mid; open it."""
    charge = limits.copy_charge(current_conversations().uid, "The fork was not made")  # its files are copies
    conversation = current_conversations().fork(cid, mid, charge)
    return redirect(url_for("chat.conversation", cid=conversation.id), 303)


@bp.route("/c/<cid>/instructions", methods=["GET", "POST"])
@user_required
def instructions(cid):
    """The conversation's own instructions (its system prompt): a plain form, with or without JavaScript."""
    conversations = current_conversations()
    conversation = conversations.get(cid)
    if request.method == "GET":
        return render_template("instructions.html", conversation=conversation, limit=MAX_INSTRUCTIONS_CHARS)
    text = form_text("instructions").strip()  # line breaks as LF, counted as maxlength counts (lengths.py)
    if length(text) > MAX_INSTRUCTIONS_CHARS:
        error = f"The instructions are {characters(text)}; the limit is {MAX_INSTRUCTIONS_CHARS:,}."
        page = render_template(
            "instructions.html", conversation=conversation, limit=MAX_INSTRUCTIONS_CHARS, error=error, draft=text
        )
        return page, 413
    conversations.set_instructions(cid, text)
    return redirect(url_for("chat.conversation", cid=cid), 303)
