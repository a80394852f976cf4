"""Chatting with a running server over real HTTP, as the page's htmx does: a session cookie, the CSRF
header, and the reply's event stream read as it arrives (for gunicorn instances and benchmarks)."""

import re

import requests


class SSEEvent:
    """One Server-Sent Event: its id (or None), name and data."""

    def __init__(self, event_id, name, data):
        self.id, self.name, self.data = event_id, name, data

    def __repr__(self):
        return f"SSEEvent({self.id!r}, {self.name!r}, {self.data[:40]!r})"


def _lines(response):
    """The response's lines as bytes, each as soon as it is complete."""
    pending = b""
    for chunk in response.iter_content(chunk_size=None):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from lines


def read_events(response):
    """Yield the SSEEvents of a streaming requests response as they arrive (comments skipped).

    Reading may stop and go on later: the response keeps one line iterator, whose buffer holds
    what was received but not yet read.
    """
    if not hasattr(response, "sse_lines"):
        response.sse_lines = _lines(response)
    event_id, name, data = None, "message", []
    for raw in response.sse_lines:
        line = raw.decode("utf-8")
        if line == "":
            if data:
                yield SSEEvent(event_id, name, "\n".join(data))
            event_id, name, data = None, "message", []
        elif line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "data:":
            data.append("")


class HttpChat:
    """One browser's session with a server at base_url (another base_url may share the cookie: see at())."""

    def __init__(self, base_url, session=None):
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        if session is None:
            page = self.session.get(self.base_url + "/new", timeout=10)
            page.raise_for_status()
            self.token = re.search(r'"X-CSRFToken": "([^"]+)"', page.text).group(1)

    def at(self, base_url):
        """The same browser session talking to another server (another gunicorn instance)."""
        other = HttpChat(base_url, session=self.session)
        other.token = self.token
        return other

    def _headers(self, **extra):
        return {"HX-Request": "true", "X-CSRFToken": self.token, **extra}

    def start(self, text):
        """Post a new chat's first message; return (cid, reply id)."""
        response = self.session.post(self.base_url + "/new", data={"text": text}, headers=self._headers(), timeout=30)
        response.raise_for_status()
        cid = response.headers["HX-Push-Url"].rsplit("/", 1)[1]
        mid = re.search(r'data-status="streaming" id="m-([^"]+)"', response.text).group(1)
        return cid, mid

    def stream(self, cid, mid, last_event_id=None, timeout=60):
        """Open the reply's event stream (resuming after last_event_id); return the streaming response."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        response = self.session.get(
            f"{self.base_url}/c/{cid}/messages/{mid}/stream", headers=headers, stream=True, timeout=timeout
        )
        response.raise_for_status()
        return response

    def stop(self, cid, mid):
        """Press Stop."""
        return self.session.post(f"{self.base_url}/c/{cid}/messages/{mid}/stop", headers=self._headers(), timeout=10)

    def retry(self, cid, mid):
        """Press Retry (or Regenerate)."""
        return self.session.post(
            f"{self.base_url}/c/{cid}/messages/{mid}/regenerate", headers=self._headers(), timeout=10
        )

    def page(self, cid):
        """The conversation's page, as a browser without htmx gets it."""
        return self.session.get(f"{self.base_url}/c/{cid}", timeout=10)
