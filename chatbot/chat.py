"""Blueprint "chat": the chat pages, sending a message, and the reply's event stream."""

import json
import re
from contextlib import closing
from itertools import chain

from flask import (Blueprint, Response, abort, current_app, make_response, redirect, render_template,
                   request, stream_with_context, url_for)
from markupsafe import escape

from .auth import current_conversations, user_required
from .conversations import ERROR, Conversation, Message, NotFound
from .llm import get_llm
from .replies import Settings, reset_reply, run_reply
from .storage import StorageError

bp = Blueprint("chat", __name__)

UNSAVED_REPLY = "The reply could not be saved: conversations cannot be reached right now. Please retry."


def is_htmx():
    """True for requests htmx makes (forms and links without JavaScript get whole pages)."""
    return request.headers.get("HX-Request") == "true"


def is_fragment_request():
    """True for htmx requests aimed at the chat pane, which get a fragment instead of a page."""
    return request.headers.get("HX-Target") == "chat"


def _page_or_fragment(template, fragment, **context):
    conversations = current_conversations()
    context.setdefault("entries", conversations.index_page())
    context.setdefault("models", get_llm().models)
    conversation = context.get("conversation")
    context["current_id"] = conversation.id if conversation else None
    context["oob_sidebar"] = is_fragment_request()
    name = fragment if is_fragment_request() else template
    response = make_response(render_template(name, **context))
    response.vary.add("HX-Target")
    return response


def _load(conversations, cid, mid=None):
    try:
        conversation = conversations.get(cid)
        message = conversation.message(mid) if mid else None
    except NotFound:
        abort(404)
    return conversation, message


def _read_message():
    """Validate the composer's fields; return (text, model, error, status)."""
    text = request.form.get("text", "").strip()
    model = request.form.get("model") or get_llm().models[0]
    limit = current_app.config["MAX_MESSAGE_CHARS"]
    if not text:
        return text, model, "Type a message first.", 400
    if len(text) > limit:
        return text, model, f"That message is {len(text):,} characters; the limit is {limit:,}.", 413
    if model not in get_llm().models:
        return text, model, "Pick a model from the list.", 400
    return text, model, None, 200


def _composer_error(message, status, conversation=None):
    if is_htmx():
        response = make_response(render_template("_composer_error.html", error=message), status)
        response.headers["HX-Retarget"] = "#composer-error"
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    return _page_or_fragment("chat.html", "_conversation.html", conversation=conversation,
                             error=message, draft=request.form.get("text", "")), status


def _finish_without_javascript(conversations, conversation, reply):
    """No JavaScript: wait for the whole reply, then show the conversation again."""
    events = run_reply(conversations, get_llm(), conversation.id, reply.id, Settings.from_config(current_app.config))
    for _ in events:
        pass
    return redirect(url_for("chat.conversation", cid=conversation.id, _anchor=f"m-{reply.id}"), 303)


@bp.get("/")
@user_required
def index():
    """Open the most recent conversation, or a new chat when there is none."""
    entries = current_conversations().index(limit=1)
    if entries:
        return redirect(url_for("chat.conversation", cid=entries[0]["id"]))
    return _page_or_fragment("chat.html", "_conversation.html", conversation=None)


@bp.get("/new")
@user_required
def new():
    """An empty chat; the conversation is created by its first message."""
    return _page_or_fragment("chat.html", "_conversation.html", conversation=None)


@bp.post("/new")
@user_required
def start():
    """Create a conversation from its first message."""
    text, model, error, status = _read_message()
    if error:
        return _composer_error(error, status)
    conversations = current_conversations()
    conversation, reply = conversations.start(text, model)
    if not is_htmx():
        return _finish_without_javascript(conversations, conversation, reply)
    # Small on purpose: the reply's stream opens once the browser has swapped this in.
    # The sidebar learns of the conversation from the stream's first event.
    response = make_response(render_template("_started.html", conversation=conversation,
                                             messages=conversation.messages, models=get_llm().models))
    response.headers["HX-Push-Url"] = url_for("chat.conversation", cid=conversation.id)
    return response


@bp.get("/c/<cid>")
@user_required
def conversation(cid):
    """A conversation: the whole page, or the chat pane for htmx."""
    conversation, _ = _load(current_conversations(), cid)
    return _page_or_fragment("chat.html", "_conversation.html", conversation=conversation)


@bp.post("/c/<cid>/messages")
@user_required
def send(cid):
    """Add the user's message; answer with it and a reply bubble that streams."""
    conversations = current_conversations()
    text, model, error, status = _read_message()
    if error:
        return _composer_error(error, status, _load(conversations, cid)[0])
    try:
        conversation, reply = conversations.add_exchange(cid, text, model)
    except NotFound:
        abort(404)
    if not is_htmx():
        return _finish_without_javascript(conversations, conversation, reply)
    previous_reply = conversation.messages[-3] if len(conversation.messages) > 2 else None
    return render_template("_sent.html", conversation=conversation, messages=conversation.messages[-2:],
                           previous_reply=previous_reply)


@bp.post("/c/<cid>/messages/<mid>/regenerate")
@user_required
def regenerate(cid, mid):
    """Ask the model again: retry a failed or stopped reply, or regenerate the last one."""
    conversations = current_conversations()
    try:
        conversation = reset_reply(conversations, cid, mid)
    except NotFound:
        abort(404)
    if not is_htmx():
        return _finish_without_javascript(conversations, conversation, conversation.message(mid))
    return render_template("_message.html", conversation=conversation, message=conversation.message(mid))


@bp.post("/c/<cid>/messages/<mid>/stop")
@user_required
def stop(cid, mid):
    """Stop a reply being generated; what was generated so far is kept."""
    try:
        current_conversations().request_stop(cid, mid)
    except NotFound:
        abort(404)
    return "", 204


@bp.route("/c/<cid>/messages/<mid>/edit", methods=["GET", "POST"])
@user_required
def edit(cid, mid):
    """Edit the last user message and send it again; its old reply is replaced."""
    conversations = current_conversations()
    conversation, message = _load(conversations, cid, mid)
    if message.role != "user" or mid != conversation.last_user_id:
        abort(404)
    if request.method == "GET":
        template = "_edit_form.html" if is_htmx() else "edit.html"
        return render_template(template, conversation=conversation, message=message)
    text, model, error, status = _read_message()
    if error:
        return render_template("_edit_form.html", conversation=conversation, message=message, error=error,
                               draft=request.form.get("text", "")), status
    try:
        conversation, reply = conversations.edit(cid, mid, text, model)
    except NotFound:
        abort(404)
    if not is_htmx():
        return _finish_without_javascript(conversations, conversation, reply)
    return _page_or_fragment("chat.html", "_conversation.html", conversation=conversation)


@bp.get("/c/<cid>/export.<fmt>")
@user_required
def export(cid, fmt):
    """Download the conversation as Markdown or JSON."""
    conversation, _ = _load(current_conversations(), cid)
    name = re.sub(r"[^A-Za-z0-9]+", "-", conversation.title or "conversation").strip("-").lower() or "conversation"
    if fmt == "md":
        body, mimetype = conversation.to_markdown(), "text/markdown"
    elif fmt == "json":
        body, mimetype = json.dumps(conversation.to_dict(), ensure_ascii=False, indent=2), "application/json"
    else:
        abort(404)
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'})


def _event(kind, data):
    lines = str(data).split("\n")
    return f"event: {kind}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


@bp.get("/c/<cid>/messages/<mid>/stream")
@user_required
def stream(cid, mid):
    """Server-Sent Events: each piece of the reply, then its rendered form, the title, and done."""
    conversations = current_conversations()
    events = run_reply(conversations, get_llm(), cid, mid, Settings.from_config(current_app.config))
    try:
        first_kind, first_value = next(events)  # claims the reply, or finds it finished: 404 when it does not exist
    except NotFound:
        abort(404)

    def generate():
        try:
            with closing(events):
                for kind, value in chain([(first_kind, first_value)], events):
                    if kind == "token":
                        yield _event("token", escape(value))
                    elif kind == "claimed":  # while the model starts: the conversation goes to the top
                        yield _event("sidebar", render_template("_conversation_list.html",
                                                                entries=conversations.index_page(), current_id=cid))
                    elif kind == "heartbeat":
                        yield ": heartbeat\n\n"
                    elif kind == "final":
                        yield _event("final", render_template("_message.html", conversation=value[0],
                                                              message=value[1]))
                    elif kind == "title":
                        yield _event("title", render_template("_title_update.html", conversation=value,
                                                              entries=conversations.index_page(), current_id=cid))
        except NotFound:
            pass  # the conversation was deleted, or the message edited away, while the reply streamed
        except StorageError as error:
            current_app.logger.error("storage failed during a reply: %s", error)
            unsaved = Message(id=mid, role="assistant", content="", created_at="", status=ERROR, error=UNSAVED_REPLY)
            yield _event("final", render_template("_message.html", conversation=Conversation(cid, "", "", ""),
                                                  message=unsaved))
        yield _event("done", "")

    return Response(stream_with_context(generate()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
