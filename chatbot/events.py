"""A reply's event protocol, defined once: what a job logs, and what each event shows in the page.

This is the wire format, one of the resumable protocol's four parts: the writer (replies.py) logs
events as small dicts with a "kind" in the log (live/), and the reader (stream.py) sends each as a
Server-Sent Event with the log's id, rendered for the reader's own session (a rendered form carries
that session's CSRF token, so HTML is made per stream, never stored in the log).

kind      SSE event  what it renders                                        swapped into
started   sidebar    the conversation list, this conversation on top        #conversation-list (outerHTML)
render    render     a patch of the reply's Markdown rendered so far        the bubble's text (app.js applies it)
                     (chatbot/render.py, LiveMarkdown: the job renders once,
                     every stream sends the same patches; its offsets count
                     UTF-16 code units, as JavaScript strings do)
final     final      the finished message as stored, Markdown rendered      the streaming bubble (outerHTML)
title     title      the conversation list, and the pane's heading (oob)    #conversation-list (outerHTML)
done      done       nothing: the browser closes the stream                 -

A stream that attaches late replays the log from the id it last saw, so what
a reader assembles equals what the job generated, with no gap or duplicate.
"""

from flask import render_template

from .conversations import ERROR, Message

STARTED, RENDER, FINAL, TITLE, DONE = "started", "render", "final", "title", "done"
SSE_NAMES = {STARTED: "sidebar", RENDER: "render", FINAL: "final", TITLE: "title", DONE: "done"}
HEARTBEAT = ": heartbeat\n\n"
# Sent first on every stream: a browser whose connection dropped tries again after 1 s (its default is 3 s).
RECONNECT = "retry: 1000\n\n"


def frame(name, data, event_id=None):
    """One Server-Sent Event. Safe for any text: a line break in data can never end the event early.

    Every line break becomes its own `data:` line, which the browser joins
    with "\\n"; a carriage return (which SSE also reads as a line end) is
    sent as the HTML character reference &#13;, since data is HTML.
    """
    lines = str(data).replace("\r", "&#13;").split("\n")
    head = f"id: {event_id}\n" if event_id is not None else ""
    return head + f"event: {name}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


def unlogged(kind, data=""):
    """An event the reader sends of its own (the end it read from storage, a notice): in no log, so with no id,
    and a reconnecting browser resumes after the last logged event it saw."""
    return frame(SSE_NAMES[kind], data)


def render(event, conversations, cid, mid, conversation=None):
    """The HTML an event shows, for this reader's session; final and title show the conversation as stored
    (read here unless the caller has it)."""
    kind = event["kind"]
    if kind == RENDER:
        return event["patch"]  # sanitised HTML already (bleach, in the job)
    if kind == STARTED:
        return render_template("responses/conversation_list.html", entries=conversations.index_page(), current_id=cid)
    if kind == FINAL:
        if event.get("unsaved"):
            # Storage failed at the end: say so in the bubble; the job kept nothing newer to show.
            message = Message(id=mid, role="assistant", content="", created_at="", status=ERROR, error=event["unsaved"])
            return render_message(message, cid)
        conversation = conversation or conversations.get(cid)
        return render_message(conversation.message(mid), cid, conversation)
    if kind == TITLE:
        return render_template(
            "responses/title_update.html",
            conversation=conversation or conversations.get(cid),
            entries=conversations.index_page(),
            current_id=cid,
        )
    return ""


def render_message(message, cid, conversation=None):
    """One message alone, with the controls its place in the conversation allows (none without it)."""
    return render_template(
        "responses/message.html",
        message=message,
        cid=cid,
        version=conversation.versions().get(message.id) if conversation else None,
    )


def to_sse(event_id, event, conversations, cid, mid, conversation=None):
    """The Server-Sent Event for a logged event (conversation: as stored, when the caller has read it)."""
    return frame(SSE_NAMES[event["kind"]], render(event, conversations, cid, mid, conversation), event_id)
