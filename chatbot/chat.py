"""Blueprint "chat": the chat pages, sending a message, and the reply's event stream."""

import json
import re

from flask import Blueprint, Response, abort, current_app, make_response, redirect, render_template, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from . import attachments, billing, events, files, htmx, limits
from .conversations import NotFound
from .identity import current_conversations, current_uid, user_required
from .lengths import characters, form_text, length
from .llm import get_llm
from .pages import chat_page, pane_context
from .replies import get_replies
from .storage import get_store
from .stream import open_stream, wait_for_reply

bp = Blueprint("chat", __name__)


def _read_message():
    """Validate the composer's fields; return (text, model, error, status)."""
    text = form_text("text").strip()  # line breaks as LF, counted as the browser's maxlength counts (lengths.py)
    model = request.form.get("model") or get_llm().models[0]
    limit = current_app.config["MAX_MESSAGE_CHARS"]
    if not text:
        return text, model, "Type a message first.", 400
    if length(text) > limit:
        return text, model, f"That message is {characters(text)}; the limit is {limit:,}.", 413
    if model not in get_llm().models:
        return text, model, "Pick a model from the list.", 400
    return text, model, None, 200


def composer_error(message, status, conversation=None):
    """Say in the composer why a message was not sent; the text stays where the user typed it."""
    if htmx.is_htmx():
        response = make_response(render_template("regions/composer_error.html", error=message), status)
        return htmx.retarget(response, "#composer-error")
    return chat_page(conversation, status=status, error=message, draft=request.form.get("text", ""))


@bp.errorhandler(attachments.Refused)
def file_refused(error):
    """A file that cannot be attached: said in the composer, the typed text kept (400 or 413)."""
    cid = (request.view_args or {}).get("cid")
    return composer_error(str(error), error.status, current_conversations().get(cid) if cid else None)


@bp.errorhandler(RequestEntityTooLarge)
def too_large(error):
    """A post over MAX_CONTENT_LENGTH is refused unread, so its text is not known here. With htmx the composer
    says so, its text and files left as they were; without, a page says what fits (Back returns to the text)."""
    caps = attachments.Caps.from_config(current_app.config)
    message = f"That was too much to send at once: a message may carry {caps.described()}."
    if htmx.is_htmx():
        return composer_error(message, 413)
    back = "Go back (your message is still there as you typed it), remove a file or two, and send again."
    return render_template("error.html", code=413, message=f"{message} {back}"), 413


def _reply(store_reply, answer, mid=None):
    """Store a reply and generate it: how a first message, a message, Retry/Regenerate and an edit start one.

    A slot for one more reply of this user is claimed first (429 when too many are being written).
    store_reply() writes the reply, marked streaming, and returns (conversation, reply); reply is None
    when reply `mid` is being written already. The reply's job then starts and keeps the slot until it
    ends. The answer is answer(conversation, reply) for htmx; without JavaScript, the request waits for
    the reply (its job goes on if the request is cut), then shows the conversation.
    """
    operator_pays = not billing.payer().user_pays  # who pays is decided once a request (billing.py)
    slot = limits.take_reply_slot(current_uid(), operator_pays)  # and the day's token budgets checked, once
    try:
        conversation, reply = store_reply()
    except BaseException:
        slot.release()  # no reply was started: the slot is given back
        raise
    if reply is None:
        slot.release()
    else:
        _start_job(conversation, reply, slot)
    mid = reply.id if reply else mid
    if not htmx.is_htmx():
        wait_for_reply(conversation.id, mid)
        return redirect(url_for("chat.conversation", cid=conversation.id, _anchor=f"m-{mid}"), 303)
    return answer(conversation, reply)


def _announce_stream(response, conversation, reply):
    """Name the reply's event stream in a header, so app.js opens it while htmx is still swapping the answer in."""
    response = make_response(response)
    if reply is not None:
        response.headers["X-Reply-Stream"] = url_for("chat.stream", cid=conversation.id, mid=reply.id)
    return response


def _start_job(conversation, reply, slot):
    """Generate the reply on the server, now, in a job no request owns; it holds the slot until it ends,
    then its pieces are charged to the daily token budgets of the user and of this client's address."""
    charge = limits.token_charge(slot.uid, not billing.payer().user_pays)  # the address is this request's

    def ended(pieces):
        charge(pieces)  # before the slot is free: a reply asked for meanwhile counts them, spent or running
        slot.release()

    get_replies().start(
        get_store(), billing.reply_model(), slot.uid, conversation.id, reply.id, on_end=ended, conversation=conversation
    )


@bp.get("/")
@user_required
def index():
    """Open the most recent conversation, or a new chat when there is none."""
    entries = current_conversations().index(limit=1)
    if entries:
        return redirect(url_for("chat.conversation", cid=entries[0]["id"]))
    return chat_page()


@bp.get("/new")
@user_required
def new():
    """An empty chat; the conversation is created by its first message."""
    return chat_page()


@bp.post("/new")
@user_required
@limits.limit_messages
def start():
    """Create a conversation from its first message and start its reply."""
    text, model, error, status = _read_message()
    if error:
        return composer_error(error, status)
    uploads = files.read_uploads(model, text)  # checked, not decoded: keep() decodes them

    def started(conversation, reply):
        # Small on purpose; the sidebar learns of the conversation from the stream's first event.
        response = make_response(
            render_template("responses/started.html", conversation=conversation, models=get_llm().models)
        )
        response = _announce_stream(response, conversation, reply)
        return htmx.push_url(response, url_for("chat.conversation", cid=conversation.id))

    def store():  # the files are stored last, and deleted again when the conversation cannot be
        return files.stored_with(
            current_uid(), uploads, lambda stored: current_conversations().start(text, model, stored)
        )

    return _reply(store, started)


@bp.get("/c/<cid>")
@user_required
def conversation(cid):
    """A conversation: the whole page, or the chat pane for htmx."""
    conversations = current_conversations()
    conversation = conversations.get(cid)
    lease_seconds = current_app.config["REPLY_LEASE_SECONDS"]
    if conversation.interrupt_dead_replies(lease_seconds):  # a process died mid-reply: say so, and let Retry work
        conversation = conversations.interrupt_dead_replies(cid, lease_seconds)
    _show_branch_of(conversation, request.args.get("m"))
    return chat_page(conversation)


def _show_branch_of(conversation, mid):
    """?m=<message id> (a search result): show the branch that holds the message, without storing it."""
    if mid:
        try:
            conversation.switch(mid)
        except NotFound:
            pass  # a message since deleted or mistyped: the conversation as stored


@bp.post("/c/<cid>/messages")
@user_required
@limits.limit_messages
def send(cid):
    """Add the user's message, start its reply, and answer with both bubbles."""
    try:
        return _send(cid)
    except NotFound:
        if not htmx.is_htmx():
            raise
        # Deleted in another tab, say: said in the composer, the text and files kept there, not in #messages.
        return composer_error(
            "This conversation no longer exists (deleted in another tab?): your message was not sent.", 404
        )


def _send(cid):
    conversations = current_conversations()
    text, model, error, status = _read_message()
    if error:
        return composer_error(error, status, conversations.get(cid))
    uploads = files.read_uploads(model, text)  # checked, not decoded: keep() decodes them

    def sent(conversation, reply):
        user = conversation.messages[-2]  # add_exchange appends the user's message, then its reply
        answer = render_template(
            "responses/sent.html",
            conversation=conversation,
            exchange=[user, reply],
            previous_reply=conversation.reply_before(user.id),
        )
        return _announce_stream(answer, conversation, reply)

    after = request.form.get("after") or None  # the leaf this tab shows (another tab may show another branch)

    def store():  # the files are stored last, and deleted again when the message cannot be
        return files.stored_with(
            current_uid(), uploads, lambda stored: conversations.add_exchange(cid, text, model, after, stored)
        )

    return _reply(store, sent)


@bp.post("/c/<cid>/messages/<mid>/regenerate")
@user_required
@limits.limit_messages
def regenerate(cid, mid):
    """Ask the model again: retry a failed, stopped or interrupted reply, or regenerate the last one."""
    return _reply(
        lambda: current_conversations().restart_reply(cid, mid, current_app.config["REPLY_LEASE_SECONDS"]),
        lambda conversation, reply: _regenerated(conversation, reply, mid),
        mid,
    )


def _regenerated(conversation, reply, mid):
    """The htmx answer to Retry/Regenerate: the reply in place when it restarted there, else (a new version,
    whose branch ends with it) the chat pane."""
    if reply is None or reply.id == mid:
        return events.render_message(conversation.message(mid), conversation.id, conversation)
    return htmx.retarget(
        make_response(render_template("responses/chat_pane.html", **pane_context(conversation))), "#chat"
    )


@bp.post("/c/<cid>/messages/<mid>/stop")
@user_required
def stop(cid, mid):
    """Stop a reply being generated, whichever process runs it; what was generated is kept."""
    get_replies().stop(current_conversations(), cid, mid)
    if not htmx.is_htmx():
        return redirect(url_for("chat.conversation", cid=cid, _anchor=f"m-{mid}"), 303)
    return "", 204


@bp.route("/c/<cid>/messages/<mid>/edit", methods=["GET", "POST"])
@user_required
@limits.limit_messages
def edit(cid, mid):
    """Edit one of the user's messages: a new version of it, and a new reply; the old ones are kept."""
    conversations = current_conversations()
    conversation = conversations.get(cid)
    message = conversation.message(mid)
    if message.role != "user":
        abort(404)
    if request.method == "GET":
        return htmx.page_or_fragment("edit.html", "regions/edit_form.html", conversation=conversation, message=message)
    text, model, error, status = _read_message()
    if error:  # the form again, with the text as typed: in place for htmx, as the edit page without JavaScript
        return htmx.page_or_fragment(
            "edit.html",
            "regions/edit_form.html",
            status=status,
            conversation=conversation,
            message=message,
            error=error,
            draft=request.form.get("text", ""),
        )
    return _reply(
        lambda: conversations.edit(cid, mid, text, model), lambda conversation, reply: chat_page(conversation)
    )


@bp.get("/c/<cid>/export.<fmt>")
@user_required
def export(cid, fmt):
    """Download the conversation as Markdown (the branch down to ?leaf=, the page's, else the stored one) or JSON
    (the whole tree, its current leaf the page's)."""
    conversation = current_conversations().get(cid)
    leaf = request.args.get("leaf") or None
    conversation.shown_path(leaf)  # a message of no other conversation: 404
    name = re.sub(r"[^A-Za-z0-9]+", "-", conversation.title or "conversation").strip("-").lower() or "conversation"
    if fmt == "md":
        body, mimetype = conversation.to_markdown(leaf), "text/markdown"
    elif fmt == "json":
        conversation.current = leaf or conversation.current
        body, mimetype = json.dumps(conversation.to_dict(), ensure_ascii=False, indent=2), "application/json"
    else:
        abort(404)
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'})


@bp.get("/c/<cid>/messages/<mid>/stream")
@user_required
@limits.limit_streams
def stream(cid, mid):
    """Server-Sent Events of a reply: its log from Last-Event-ID on, then live (chatbot/stream.py reads it)."""
    conversations = current_conversations()
    # Read before the response starts, so a missing reply is a real 404, not an empty stream.
    message = conversations.get(cid).reply(mid)
    return open_stream(conversations, cid, message, request.headers.get("Last-Event-ID") or request.args.get("after"))
