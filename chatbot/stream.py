"""A reply's event stream: the reader of the resumable protocol.

The protocol has four parts, one module each:

- the writer, replies.py: a job runs the model and logs each event of the reply;
- the log, live/: the events under ids that increase (this process's memory, or Redis Streams);
- the wire format, events.py: what each event is called and shows, framed as a Server-Sent Event;
- the reader, here: a stream replays the log after the id the browser last saw (Last-Event-ID), then
  follows it live until done, with heartbeats while it is quiet. It never writes the log. When the log
  is silent it looks at storage: the reply may have ended elsewhere, or its job died.

A form post without JavaScript reads the log too, to wait for the reply's end (wait_for_reply).
How long each wait lasts is a setting (STREAM_READ_SECONDS, HEARTBEAT_SECONDS, QUIET_CHECK_SECONDS,
FINISHED_QUIET_SECONDS, NO_JS_WAIT_SECONDS): config.py says what each means and checks how they relate.
"""

import re
import time

from flask import Response, current_app, render_template, stream_with_context
from werkzeug.wsgi import ClosingIterator

from . import events, limits
from .conversations import NotFound
from .live import LiveUnavailable, get_live, id_order
from .replies import get_replies, reply_key
from .storage import StorageError

LIVE_DOWN = "Live updates are unavailable right now. The reply goes on being saved: reload the page in a moment."

# The ids the live backends give events: a number (memory) or a Redis Stream id, each part below 2**64.
EVENT_ID = re.compile(r"[0-9]{1,20}(-[0-9]{1,20})?")
ID_PART_LIMIT = 2**64


def open_stream(conversations, cid, message, resume_id):
    """The Server-Sent Events of reply `message`: its log after resume_id (from the start when None), then live.

    The caller has read the message, so a missing reply is a real 404, not an empty stream.
    """
    mid = message.id
    after = _resume_after(cid, mid, resume_id)
    if message.finished and _log_is_over(cid, mid, after):
        # Nothing more will come: the finished reply at once (a stream reopened after the end).
        return _event_stream(iter(_the_end(conversations, cid, mid)))
    closed = limits.open_stream(conversations.uid)  # each open stream holds a thread while the reply lasts
    return _event_stream(_follow(conversations, cid, mid, after), on_close=closed)


def wait_for_reply(cid, mid):
    """Without JavaScript: wait up to NO_JS_WAIT_SECONDS for the reply's log to be done (its job goes on if the
    request is cut); the caller then shows the conversation, with the reply as far as it has come.

    The wait holds a thread, so it counts among the process's open streams; when they are at their cap,
    it does not wait at all.
    """
    config = current_app.config
    key, after, deadline = reply_key(cid, mid), None, time.monotonic() + config["NO_JS_WAIT_SECONDS"]
    with limits.thread_for_waiting() as may_wait:
        try:
            while may_wait and time.monotonic() < deadline:
                found = get_live().read(key, after, timeout=config["STREAM_READ_SECONDS"])
                if any(event["kind"] == events.DONE for _, event in found):
                    return
                after = found[-1][0] if found else after
        except LiveUnavailable:
            pass  # the conversation page shows what storage has


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
    live, replies, key, config = get_live(), get_replies(), reply_key(cid, mid), current_app.config
    last_sent = last_check = time.monotonic()
    yield events.RECONNECT
    try:
        while not replies.shutting_down:  # a stopping process lets the browser reconnect elsewhere
            found = live.read(key, after, timeout=config["STREAM_READ_SECONDS"])
            for event_id, event in found:
                yield events.to_sse(event_id, event, conversations, cid, mid)
                after = event_id
                if event["kind"] == events.DONE:
                    return
            now = time.monotonic()
            if found:
                last_sent = last_check = now
                continue
            if now - last_check >= config["QUIET_CHECK_SECONDS"]:
                last_check = now
                ended = _ended_elsewhere(conversations, cid, mid, after)
                if ended:
                    yield from ended
                    return
            if now - last_sent >= config["HEARTBEAT_SECONDS"]:
                last_sent = now
                yield events.HEARTBEAT
    except LiveUnavailable as error:
        current_app.logger.error("live backend failed during a stream: %s", error)
        notice = render_template("regions/reply_notice.html", cid=cid, mid=mid, notice=LIVE_DOWN)
        yield events.unlogged(events.FINAL, notice)
        yield events.unlogged(events.DONE)
    except (NotFound, StorageError):
        yield events.unlogged(events.DONE)  # deleted or edited away meanwhile, or storage is down: nothing to show


def _ended_elsewhere(conversations, cid, mid, after):
    """When the log is silent: the reply's end from storage, marking it interrupted if its job died."""
    conversation, lease_seconds = conversations.get(cid), current_app.config["REPLY_LEASE_SECONDS"]
    message = conversation.reply(mid)
    if not message.finished:
        if message.is_running(lease_seconds):
            return None
        # Its job died: say so now, and let Retry work.
        conversation = conversations.interrupt_dead_replies(cid, lease_seconds)
    elif _log_goes_on(cid, mid, after):
        return None
    return _the_end(conversations, cid, mid, conversation)


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
    return event["kind"] != events.DONE and age < current_app.config["FINISHED_QUIET_SECONDS"]


def _the_end(conversations, cid, mid, conversation=None):
    """The reply as stored, the conversation list and heading as stored, then done: for a stream with nothing to
    follow. The list and heading are what the log's sidebar and title events showed, which this stream did not
    see when it opened after the reply's end (a quick reply done before the page connected). The conversation
    is read once for both (unless the caller has it)."""
    conversation = conversation or conversations.get(cid)
    ends = [
        events.to_sse(None, {"kind": kind}, conversations, cid, mid, conversation)
        for kind in (events.FINAL, events.TITLE)
    ]
    return ends + [events.unlogged(events.DONE)]
