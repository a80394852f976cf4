"""Talking to the chat as htmx does, and reading a reply's event stream."""

import re

HTMX = {"HX-Request": "true"}


def parse_events(body):
    """Split a text/event-stream body into (event, data) pairs; comments are skipped."""
    events = []
    for block in body.split("\n\n"):
        kind, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event: "):
                kind = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
        if data:
            events.append((kind, "\n".join(data)))
    return events


def start_conversation(client, text="Hello there"):
    """Create a conversation through the htmx path; return (cid, reply id). The model has not run yet."""
    response = client.post("/new", data={"text": text}, headers=HTMX)
    assert response.status_code == 200
    cid = response.headers["HX-Push-Url"].rsplit("/", 1)[1]
    mid = re.search(r'id="m-([^"]+)"[^>]*data-status|data-status="streaming" id="m-([^"]+)"', response.text)
    mid = mid.group(1) or mid.group(2)
    return cid, mid


def stream_url(cid, mid):
    """The path of a reply's event stream."""
    return f"/c/{cid}/messages/{mid}/stream"


def finish_reply(client, cid, mid):
    """Read the reply's whole event stream (a stream left unread is a client that went away)."""
    return parse_events(client.get(stream_url(cid, mid)).text)


def finished_conversation(client, text="Hello there"):
    """Start a conversation and read its reply to the end; return (cid, reply id)."""
    cid, mid = start_conversation(client, text)
    finish_reply(client, cid, mid)
    return cid, mid


def open_stream_at_first_token(client, cid, mid):
    """Open the reply's stream unbuffered and read up to its first text; return (chunks read, the rest).

    The rest is an iterator over the stream's remaining chunks; leaving it unread is a client that went away.
    """
    chunks = iter(client.get(stream_url(cid, mid), buffered=False).response)
    received = [next(chunks)]
    while b"event: render" not in received[-1]:
        received.append(next(chunks))
    return received, chunks


def assemble(patches):
    """The HTML a page builds from a reply's render events' data, as app.js applies them (see LiveMarkdown)."""
    blocks, tail = "", ""
    for patch in patches:
        keep, commit, html = patch.split("\n", 2)
        tail = tail[: int(keep)] + html
        blocks, tail = blocks + tail[: int(commit)], tail[int(commit) :]
    return blocks + tail
