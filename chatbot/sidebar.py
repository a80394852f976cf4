"""Blueprint "sidebar": the user's conversations: list, search, rename, delete."""

import re
from datetime import datetime, timedelta, timezone

from flask import Blueprint, redirect, render_template, request, url_for
from markupsafe import Markup, escape

from . import htmx, limits
from .conversations import INDEX_PAGE, MAX_TITLE_CHARS, NotFound
from .identity import current_conversations, user_required
from .lengths import characters, length
from .llm import get_llm
from .shares import Shares

bp = Blueprint("sidebar", __name__, url_prefix="/sidebar")


@bp.app_template_global()
def sidebar_page_size():
    """How many conversations one page of the sidebar lists (older ones load on demand)."""
    return INDEX_PAGE


@bp.app_template_filter("by_date")
def group_by_date(entries, today=None):
    """Group index entries (newest first) under Today, Yesterday, Previous 7 days and Older."""
    today = today or datetime.now(timezone.utc).date()
    groups = []
    for entry in entries:
        day = datetime.fromisoformat(entry["updated_at"]).date()
        if day >= today:
            label = "Today"
        elif day == today - timedelta(days=1):
            label = "Yesterday"
        elif day > today - timedelta(days=7):
            label = "Previous 7 days"
        else:
            label = "Older"
        if not groups or groups[-1][0] != label:
            groups.append((label, []))
        groups[-1][1].append(entry)
    return groups


@bp.app_template_filter("highlight")
def highlight(text, query, context=60):
    """Escape text, cut it around the first match, and mark every searched word."""
    words = [re.escape(word) for word in query.split() if word]
    if not words:
        return escape(text)
    pattern = re.compile("|".join(words), re.IGNORECASE)
    first = pattern.search(text)
    if first and len(text) > 2 * context:
        start = max(0, first.start() - context)
        text = ("…" if start else "") + text[start : first.end() + context] + "…"
    marked, position = [], 0
    for match in pattern.finditer(text):
        marked.append(escape(text[position : match.start()]))
        marked.append(Markup("<mark>{}</mark>").format(match.group()))
        position = match.end()
    marked.append(escape(text[position:]))
    return Markup("").join(marked)


@bp.get("/")
@user_required
def conversation_list():
    """The conversation list fragment, newest first (one storage read); with offset, an older page."""
    offset = max(0, request.args.get("offset", 0, type=int))
    conversations = current_conversations()
    if offset:
        return render_template(
            "responses/older_conversations.html",
            entries=conversations.index(),
            offset=offset,
            current_id=request.args.get("current"),
        )
    return render_template(
        "responses/conversation_list.html", entries=conversations.index_page(), current_id=request.args.get("current")
    )


@bp.get("/search")
@user_required
@limits.limit_searches
def search():
    """Conversations whose title or messages contain the words: a fragment for htmx, else a page."""
    conversations = current_conversations()
    query = request.args.get("q", "").strip()[:200]
    if htmx.wants_fragment() and not query:
        return htmx.page_or_fragment(
            "chat.html", "responses/conversation_list.html", entries=conversations.index_page()
        )
    context = {"query": query, "results": conversations.search(query)} if query else {}
    return htmx.page_or_fragment(
        "chat.html",
        "regions/search_results.html",
        entries=conversations.index_page(),
        models=get_llm().models,
        conversation=None,
        **context,
    )


@bp.get("/<cid>")
@user_required
def entry(cid):
    """One sidebar entry (used to cancel a rename)."""
    return render_template("regions/conversation_entry.html", entry=current_conversations().get(cid).index_entry())


def _rename_form(entry, status=200, **context):
    return htmx.page_or_fragment("rename.html", "regions/rename_form.html", status=status, entry=entry, **context)


@bp.route("/<cid>/rename", methods=["GET", "POST"])
@user_required
@limits.limit_renames
def rename(cid):
    """Rename a conversation: an inline form for htmx, a small page without JavaScript."""
    conversations = current_conversations()
    entry = conversations.get(cid).index_entry()
    if request.method == "GET":
        return _rename_form(entry)
    title = " ".join(request.form.get("title", "").split())
    if not title:
        return _rename_form(entry, 400, title=title, error="A title cannot be empty.")
    if length(title) > MAX_TITLE_CHARS:  # as the input's maxlength counts: an emoji two (lengths.py)
        return _rename_form(
            entry,
            400,
            title=title,
            error=f"Titles have at most {MAX_TITLE_CHARS} characters. This one has {characters(title)}.",
        )
    renamed = conversations.rename(cid, title)
    if htmx.is_htmx():
        # When the renamed conversation is the one on screen, its heading and the tab's title change too.
        showing = htmx.current_url_path() == url_for("chat.conversation", cid=cid)
        return render_template(
            "responses/renamed.html",
            entry=renamed.index_entry(),
            conversation=renamed,
            showing=showing,
            current_id=cid if showing else None,
        )
    return redirect(url_for("chat.conversation", cid=cid), 303)


def _entry_to_delete(conversations, cid):
    try:
        return conversations.get(cid).index_entry()
    except NotFound:
        # An entry left in the index when its conversation is gone (a failed index write) can still be deleted.
        entry = next((entry for entry in conversations.index() if entry["id"] == cid), None)
        if entry is None:
            raise
        return entry


@bp.route("/<cid>/delete", methods=["GET", "POST"])
@user_required
def delete(cid):
    """Delete a conversation after a confirmation (hx-confirm, or a page without JavaScript)."""
    conversations = current_conversations()
    if request.method == "GET":
        return render_template("delete.html", entry=_entry_to_delete(conversations, cid))
    conversations.delete(cid)
    Shares(conversations.store, conversations.uid).revoke_conversation(cid)  # its links go with it (README)
    if not htmx.is_htmx():
        return redirect(url_for("chat.index"), 303)
    # When the deleted conversation is the one on screen, the pane becomes a new chat.
    showing_deleted = htmx.current_url_path() == url_for("chat.conversation", cid=cid)
    response = htmx.page_or_fragment(
        "chat.html",
        "responses/after_delete.html",
        entries=conversations.index_page(),
        models=get_llm().models,
        conversation=None,
        replace_chat=showing_deleted,
    )
    if showing_deleted:
        htmx.push_url(response, url_for("chat.new"))
    return response
