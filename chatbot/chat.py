"""Blueprint "chat": the chat pages, sending a message, and the reply's event stream."""

import json
import re
import time
from contextlib import contextmanager

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from werkzeug.wsgi import ClosingIterator

from . import billing, events, htmx, limits
from .conversations import NotFound
from .identity import current_conversations, current_uid, user_required
from .live import LiveUnavailable, get_live, id_order
from .llm import get_llm
from .replies import get_replies, reply_key
from .storage import StorageError, get_store

bp = Blueprint("chat", __name__)

# A stream waits this long for the next event before it looks around (shutdown, a dead job).
READ_SECONDS = 1.0
# A comment this often keeps proxies (Heroku's router drops a silent connection after 55 s) from closing the stream.
HEARTBEAT_SECONDS = 10
# After this long with no event, a stream checks storage: the reply may have ended elsewhere, or its job died.
QUIET_CHECK_SECONDS = 10
# A finished reply's log that stays silent this long (its title never came) ends its streams anyway.
FINISHED_QUIET_SECONDS = 60
# Without JavaScript the form post waits this long for the reply, then shows the conversation anyway.
WAIT_SECONDS = 25
LIVE_DOWN = "Live updates are unavailable right now. The reply goes on being saved: reload the page in a moment."


def _chat_page(conversation=None, status=200, **context):
    """The chat: the whole page, or the pane (with the sidebar list out of band) when htmx targets #chat."""
    context.setdefault("entries", current_conversations().index_page())
    return htmx.page_or_fragment(
        "chat.html",
        "responses/chat_pane.html",
        region="chat",
        status=status,
        conversation=conversation,
        current_id=conversation.id if conversation else None,
        models=get_llm().models,
        **context,
    )


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


def composer_error(message, status, conversation=None):
    """Say in the composer why a message was not sent; the text stays where the user typed it."""
    if htmx.is_htmx():
        response = make_response(render_template("regions/composer_error.html", error=message), status)
        return htmx.retarget(response, "#composer-error")
    return _chat_page(conversation, status=status, error=message, draft=request.form.get("text", ""))


@contextmanager
def _reply_slot():
    """A slot for one more reply of this user, claimed first (429 when too many are being written).

    The reply's job keeps it until it ends; a request that starts no reply gives it back.
    """
    limits.require_token_budget(current_uid())
    slot = limits.take_reply_slot(current_uid())
    try:
        yield slot
    except BaseException:
        slot.release()
        raise


def _start_reply(conversation, reply, slot):
    """Generate the reply on the server, now, in a job no request owns; it holds the slot until it ends,
    then its pieces are charged to the daily token budgets of the user and of this client's address."""
    if reply is None:  # nothing to start (a reply already being written)
        slot.release()
        return
    charge = limits.token_charge(slot.uid)  # the address is this request's: the job has none

    def ended(pieces):
        charge(pieces)  # before the slot is free: a reply asked for meanwhile counts them, spent or running
        slot.release()

    get_replies().start(
        get_store(), billing.reply_model(), slot.uid, conversation.id, reply.id, on_end=ended, conversation=conversation
    )


def _wait_without_javascript(conversation, reply):
    """No JavaScript: wait for the reply (its job goes on if this request is cut), then show the conversation.

    The wait holds a thread, so it counts among the process's open streams; when they are at their cap,
    the conversation is shown at once, with the reply as far as it has come.
    """
    key, after, deadline = reply_key(conversation.id, reply.id), None, time.monotonic() + WAIT_SECONDS
    with limits.thread_for_waiting() as may_wait:
        try:
            while may_wait and time.monotonic() < deadline:
                found = get_live().read(key, after, timeout=READ_SECONDS)
                if any(event["kind"] == events.DONE for _, event in found):
                    break
                after = found[-1][0] if found else after
        except LiveUnavailable:
            pass  # the conversation page shows what storage has
    return redirect(url_for("chat.conversation", cid=conversation.id, _anchor=f"m-{reply.id}"), 303)


@bp.get("/")
@user_required
def index():
    """Open the most recent conversation, or a new chat when there is none."""
    entries = current_conversations().index(limit=1)
    if entries:
        return redirect(url_for("chat.conversation", cid=entries[0]["id"]))
    return _chat_page()


@bp.get("/new")
@user_required
def new():
    """An empty chat; the conversation is created by its first message."""
    return _chat_page()


@bp.post("/new")
@user_required
@limits.limit_messages
def start():
    """Create a conversation from its first message and start its reply."""
    text, model, error, status = _read_message()
    if error:
        return composer_error(error, status)
    with _reply_slot() as slot:
        conversation, reply = current_conversations().start(text, model)
    _start_reply(conversation, reply, slot)
    if not htmx.is_htmx():
        return _wait_without_javascript(conversation, reply)
    # Small on purpose; the sidebar learns of the conversation from the stream's first event.
    response = make_response(
        render_template("responses/started.html", conversation=conversation, models=get_llm().models)
    )
    return htmx.push_url(response, url_for("chat.conversation", cid=conversation.id))


@bp.get("/c/<cid>")
@user_required
def conversation(cid):
    """A conversation: the whole page, or the chat pane for htmx."""
    conversations = current_conversations()
    conversation = conversations.get(cid)
    if conversation.interrupt_dead_replies():  # a process died mid-reply: say so, and let Retry work
        conversation = conversations.interrupt_dead_replies(cid)
    return _chat_page(conversation)


@bp.post("/c/<cid>/messages")
@user_required
@limits.limit_messages
def send(cid):
    """Add the user's message, start its reply, and answer with both bubbles."""
    conversations = current_conversations()
    text, model, error, status = _read_message()
    if error:
        return composer_error(error, status, conversations.get(cid))
    with _reply_slot() as slot:
        conversation, reply = conversations.add_exchange(cid, text, model)
    _start_reply(conversation, reply, slot)
    if not htmx.is_htmx():
        return _wait_without_javascript(conversation, reply)
    user = conversation.messages[-2]  # add_exchange appends the user's message, then its reply
    return render_template(
        "responses/sent.html",
        conversation=conversation,
        exchange=[user, reply],
        previous_reply=conversation.reply_before(user.id),
    )


@bp.post("/c/<cid>/messages/<mid>/regenerate")
@user_required
@limits.limit_messages
def regenerate(cid, mid):
    """Ask the model again: retry a failed, stopped or interrupted reply, or regenerate the last one."""
    with _reply_slot() as slot:
        conversation, reply = current_conversations().restart_reply(cid, mid)
    _start_reply(conversation, reply, slot)
    if not htmx.is_htmx():
        return _wait_without_javascript(conversation, conversation.message(mid))
    return events.render_message(conversation.message(mid), cid, conversation)


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
    """Edit the last user message and send it again; its old reply is replaced."""
    conversations = current_conversations()
    conversation = conversations.get(cid)
    message = conversation.message(mid)
    if mid != conversation.last_user_id:
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
    with _reply_slot() as slot:
        conversation, reply = conversations.edit(cid, mid, text, model)
    _start_reply(conversation, reply, slot)
    if not htmx.is_htmx():
        return _wait_without_javascript(conversation, reply)
    return _chat_page(conversation)


@bp.get("/c/<cid>/export.<fmt>")
@user_required
def export(cid, fmt):
    """Download the conversation as Markdown or JSON."""
    conversation = current_conversations().get(cid)
    name = re.sub(r"[^A-Za-z0-9]+", "-", conversation.title or "conversation").strip("-").lower() or "conversation"
    if fmt == "md":
        body, mimetype = conversation.to_markdown(), "text/markdown"
    elif fmt == "json":
        body, mimetype = json.dumps(conversation.to_dict(), ensure_ascii=False, indent=2), "application/json"
    else:
        abort(404)
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'})


@bp.get("/c/<cid>/messages/<mid>/stream")
@user_required
@limits.limit_streams
def stream(cid, mid):
    """Server-Sent Events of a reply: its log from Last-Event-ID on, then live (see chatbot/events.py)."""
    conversations = current_conversations()
    # Checked before the response starts, so a missing reply is a real 404, not an empty stream.
    message = conversations.get(cid).reply(mid)
    after = _resume_after(cid, mid, request.headers.get("Last-Event-ID") or request.args.get("after"))
    if message.finished and _log_is_over(cid, mid, after):
        # Nothing more will come: the finished reply at once (a stream reopened after the end).
        return _event_stream(iter(_the_end(conversations, cid, mid)))
    closed = limits.open_stream(conversations.uid)  # each open stream holds a thread while the reply lasts
    return _event_stream(_follow(conversations, cid, mid, after), on_close=closed)


# The ids the live backends give events: a number (memory) or a Redis Stream id, each part below 2**64.
EVENT_ID = re.compile(r"[0-9]{1,20}(-[0-9]{1,20})?")
ID_PART_LIMIT = 2**64


def _event_id(value):
    """A resume id the backends could have given, or None (from the start) for anything else."""
    if not (value and EVENT_ID.fullmatch(value)):
        return None
    return value if all(int(part) < ID_PART_LIMIT for part in value.split("-")) else None


def _resume_after(cid, mid, value):
    """The id a stream resumes after: one the live backend could have given this log, else None (the start).

    Ids only increase, so one past the log's last event was never given: a stream resuming after it would
    wait for events that never come, holding its thread.
    """
    after = _event_id(value)
    if after is None:
        return None
    try:
        last = get_live().last(reply_key(cid, mid))
    except LiveUnavailable:
        return after  # the stream says so itself, or storage shows the reply
    return None if last is not None and id_order(after) > id_order(last[0]) else after


def _log_is_over(cid, mid, after):
    """True when the stream has nothing to replay: a finished reply's title may still be on its way."""
    try:
        found = get_live().read(reply_key(cid, mid), after)
    except LiveUnavailable:
        return True
    # Resuming: replay what followed. Opening afresh a reply whose log is complete: the reply itself, at once.
    return not found or (after is None and found[-1][1]["kind"] == events.DONE)


def _event_stream(body, on_close=None):
    body = stream_with_context(body)
    return Response(
        ClosingIterator(body, [on_close]) if on_close else body,  # the server always closes a response
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _follow(conversations, cid, mid, after):
    """Yield the reply's events after `after`, live, until done; heartbeats while quiet."""
    live, replies, key = get_live(), get_replies(), reply_key(cid, mid)
    last_sent = last_check = time.monotonic()
    yield events.RECONNECT
    try:
        while not replies.shutting_down:  # a stopping process lets the browser reconnect elsewhere
            found = live.read(key, after, timeout=READ_SECONDS)
            for event_id, event in found:
                yield events.to_sse(event_id, event, conversations, cid, mid)
                after = event_id
                if event["kind"] == events.DONE:
                    return
            now = time.monotonic()
            if found:
                last_sent = last_check = now
                continue
            if now - last_check >= QUIET_CHECK_SECONDS:
                last_check = now
                ended = _ended_elsewhere(conversations, cid, mid, after)
                if ended:
                    yield from ended
                    return
            if now - last_sent >= HEARTBEAT_SECONDS:
                last_sent = now
                yield events.HEARTBEAT
    except LiveUnavailable as error:
        current_app.logger.error("live backend failed during a stream: %s", error)
        yield events.frame("final", render_template("regions/reply_notice.html", cid=cid, mid=mid, notice=LIVE_DOWN))
        yield events.frame("done", "")
    except (NotFound, StorageError):
        yield events.frame("done", "")  # deleted or edited away meanwhile, or storage is down: nothing to show


def _ended_elsewhere(conversations, cid, mid, after):
    """When the log is silent: the reply's end from storage, marking it interrupted if its job died."""
    message = conversations.get(cid).reply(mid)
    if not message.finished:
        if message.is_running():
            return None
        conversations.interrupt_dead_replies(cid)  # its job died: say so now, and let Retry work
    elif _log_goes_on(cid, mid, after):
        return None
    return _the_end(conversations, cid, mid)


def _log_goes_on(cid, mid, after):
    """True while a finished reply's log may still bring a stream at `after` something: events past it,
    or its title (the log is not done, and spoke less than FINISHED_QUIET_SECONDS ago).

    The quiet is the log's own, since its last event, not since the stream opened: a stream resumed late
    does not wait the whole while again, and a position past the log's end waits for nothing.
    """
    last = get_live().last(reply_key(cid, mid))
    if last is None:
        return False  # the log is gone (a restarted process, or it expired)
    event_id, event, age = last
    if after is None or id_order(event_id) > id_order(after):
        return True  # the next read gets them
    return event["kind"] != events.DONE and age < FINISHED_QUIET_SECONDS


def _the_end(conversations, cid, mid):
    """The reply as stored, then done: for a stream with nothing to follow."""
    return [events.to_sse(None, {"kind": events.FINAL}, conversations, cid, mid), events.frame("done", "")]
