"""Blueprint "sidebar": the user's conversations: list, search, rename, delete."""

import re
from urllib.parse import urlsplit
from datetime import datetime, timedelta, timezone

from flask import Blueprint, abort, make_response, redirect, render_template, request, url_for
from markupsafe import Markup, escape

from .auth import current_conversations, user_required
from .chat import is_htmx
from .conversations import INDEX_PAGE, MAX_TITLE_CHARS, NotFound
from .llm import get_llm

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
        text = ("…" if start else "") + text[start:first.end() + context] + "…"
    marked, position = [], 0
    for match in pattern.finditer(text):
        marked.append(escape(text[position:match.start()]))
        marked.append(Markup("<mark>{}</mark>").format(match.group()))
        position = match.end()
    marked.append(escape(text[position:]))
    return Markup("").join(marked)


def _entry(conversations, cid):
    try:
        return conversations.get(cid).index_entry()
    except NotFound:
        abort(404)


@bp.get("/")
@user_required
def conversation_list():
    """The conversation list fragment, newest first (one storage read)."""
    offset = max(0, request.args.get("offset", 0, type=int))
    conversations = current_conversations()
    template = "_conversation_page.html" if offset else "_conversation_list.html"
    return render_template(template, entries=conversations.index() if offset else conversations.index_page(),
                           current_id=request.args.get("current"), offset=offset)


@bp.get("/search")
@user_required
def search():
    """Conversations whose title or messages contain the words: a fragment for htmx, else a page."""
    conversations = current_conversations()
    query = request.args.get("q", "").strip()[:200]
    if is_htmx():
        if not query:
            response = make_response(render_template("_conversation_list.html", entries=conversations.index_page()))
        else:
            response = make_response(render_template("_search_results.html", query=query,
                                                     results=conversations.search(query)))
    else:
        context = {"entries": conversations.index_page(), "models": get_llm().models, "conversation": None,
                   "query": query}
        if query:
            context["results"] = conversations.search(query)
        response = make_response(render_template("chat.html", **context))
    response.vary.add("HX-Request")
    return response


@bp.get("/<cid>")
@user_required
def entry(cid):
    """One sidebar entry (used to cancel a rename)."""
    return render_template("_conversation_entry.html", entry=_entry(current_conversations(), cid))


def _rename_form(entry, status=200, **context):
    if is_htmx():
        return render_template("_rename_form.html", entry=entry, **context), status
    return render_template("sidebar_page.html", heading="Rename conversation", action="rename", entry=entry,
                           **context), status


@bp.route("/<cid>/rename", methods=["GET", "POST"])
@user_required
def rename(cid):
    """Rename a conversation: an inline form for htmx, a small page without JavaScript."""
    conversations = current_conversations()
    entry = _entry(conversations, cid)
    if request.method == "GET":
        return _rename_form(entry)
    title = " ".join(request.form.get("title", "").split())
    if not title:
        return _rename_form(entry, 400, title=title, error="A title cannot be empty.")
    if len(title) > MAX_TITLE_CHARS:
        return _rename_form(entry, 400, title=title, error=f"Titles have at most {MAX_TITLE_CHARS} characters.")
    renamed = conversations.rename(cid, title)
    if is_htmx():
        return render_template("_conversation_entry.html", entry=renamed.index_entry())
    return redirect(url_for("chat.conversation", cid=cid), 303)


@bp.route("/<cid>/delete", methods=["GET", "POST"])
@user_required
def delete(cid):
    """Delete a conversation after a confirmation (hx-confirm, or a page without JavaScript)."""
    conversations = current_conversations()
    if request.method == "GET":
        return render_template("sidebar_page.html", heading="Delete conversation", action="delete",
                               entry=_entry(conversations, cid))
    try:
        conversations.delete(cid)
    except NotFound:
        abort(404)
    if not is_htmx():
        return redirect(url_for("chat.index"), 303)
    # When the deleted conversation is the one on screen, the pane becomes a new chat.
    showing_deleted = urlsplit(request.headers.get("HX-Current-URL", "")).path == url_for("chat.conversation",
                                                                                         cid=cid)
    response = make_response(render_template(
        "_sidebar_after_delete.html", entries=conversations.index_page(), models=get_llm().models, conversation=None,
        replace_chat=showing_deleted))
    if showing_deleted:
        response.headers["HX-Push-Url"] = url_for("chat.new")
    return response
