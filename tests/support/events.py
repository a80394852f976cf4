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


class LivePage:
    """What a page holds for a streaming reply, built from its render events' data as app.js does: the
    patches' offsets count UTF-16 code units, a JavaScript string's, so the HTML is held as UTF-16 here."""

    def __init__(self):
        self.blocks = []  # each finished chunk of HTML, as the page inserted it
        self._tail = b""  # the tail's HTML, UTF-16-LE: two bytes a unit

    @property
    def tail(self):
        """The tail's HTML (a lone surrogate, where a cut split a character, stays as it is)."""
        return _from_units(self._tail)

    def apply(self, patch):
        """Apply one patch: keep <keep> units of the tail, append the HTML, move <commit> units to the blocks."""
        keep, commit, html = patch.split("\n", 2)
        tail = self._tail[: 2 * int(keep)] + html.encode("utf-16-le", "surrogatepass")
        if int(commit):
            self.blocks.append(_from_units(tail[: 2 * int(commit)]))
        self._tail = tail[2 * int(commit) :]

    @property
    def html(self):
        """The reply's HTML as the page shows it: the finished blocks, then the tail."""
        return "".join(self.blocks) + self.tail


def _from_units(units):
    return units.decode("utf-16-le", "surrogatepass")


def assemble(patches):
    """The HTML a page builds from a reply's render events' data, as app.js applies them (see LiveMarkdown)."""
    page = LivePage()
    for patch in patches:
        page.apply(patch)
    return page.html
