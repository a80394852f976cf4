"""The model: a Conversation and its Messages (a reply's states and how they change), ids and times.

Pure: nothing here reads or writes storage (repository.py does).
"""

import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{16}")
MAX_TITLE_CHARS = 100

# A reply's life: streaming (its job runs) -> done | error | stopped | interrupted.
# What was generated is kept in every end state. "pending" is only found in
# conversations stored before replies started generating at once; it reads
# like an interrupted reply.
PENDING, STREAMING, DONE, ERROR, STOPPED = "pending", "streaming", "done", "error", "stopped"
INTERRUPTED = "interrupted"
FINISHED = (DONE, ERROR, STOPPED, INTERRUPTED)
# A streaming reply's job saves its text every so often, which renews its lease; a lease older than
# lease_seconds (REPLY_LEASE_SECONDS, config.py) belongs to a process that died: the reply reads as interrupted.
INTERRUPTED_NOTE = "The reply was interrupted (the server restarted). What was generated is kept."
# Shown for a conversation with no title yet.
UNTITLED = "Untitled chat"


class NotFound(Exception):
    """No such conversation or message for this user."""


class CapReached(Exception):
    """A user has as many conversations, or a conversation as many messages, as allowed; str() says so."""


def new_id():
    """Return a random, URL-safe id of 16 characters."""
    return secrets.token_urlsafe(12)


def is_valid_id(value):
    """True when value has the shape of an id this app generates."""
    return bool(ID_PATTERN.fullmatch(value or ""))  # fullmatch: "$" would let a trailing newline through


def display_title(title):
    """A conversation's title as shown: the placeholder until it has one."""
    return title or UNTITLED


def now():
    """The current UTC time as an ISO 8601 string that sorts chronologically."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class Message:
    """One turn: the user's text or the assistant's reply."""

    id: str
    role: str
    content: str
    created_at: str
    status: str = DONE
    model: str | None = None
    error: str | None = None
    # While streaming: when the job last saved the text (its lease).
    saved_at: str | None = None
    # A user message's files: [{id, name, type, size, kind}] (chatbot/files.py keeps them).
    attachments: list | None = None

    @property
    def finished(self):
        """True when nothing more will be written to this message."""
        return self.status in FINISHED

    def is_running(self, lease_seconds, at=None):
        """True while a live job generates this reply (it renewed its lease within lease_seconds)."""
        if self.status != STREAMING or not self.saved_at:
            return False
        age = (at or datetime.now(timezone.utc)) - datetime.fromisoformat(self.saved_at)
        return age <= timedelta(seconds=lease_seconds)

    def claim(self, model):
        """Start generating this reply afresh: empty, streaming, leased to the job about to run."""
        self.status, self.content, self.error, self.model, self.saved_at = STREAMING, "", None, model, now()

    def save_progress(self, content):
        """Keep the text generated so far and renew the lease; False when the reply is not streaming."""
        if self.status != STREAMING:
            return False
        self.content, self.saved_at = content, now()
        return True

    def finish(self, content, status, error=None):
        """End the reply with what was generated and how it ended."""
        self.content, self.status, self.error, self.saved_at = content, status, error, None

    def interrupt(self):
        """End a reply whose job died: keep its text, say so."""
        self.finish(self.content, INTERRUPTED, INTERRUPTED_NOTE)


@dataclass
class Conversation:
    """A conversation with its messages, as stored."""

    id: str
    model: str
    created_at: str
    updated_at: str
    title: str | None = None
    title_source: str | None = None  # "auto" (generated) or "user" (renamed)
    messages: list[Message] = field(default_factory=list)

    @classmethod
    def from_dict(cls, document):
        """Build from a stored JSON document."""
        fields = dict(document)
        known = Message.__dataclass_fields__
        # Fields of older versions (claimed_at, stop_requested) are dropped.
        fields["messages"] = [
            Message(**{name: value for name, value in message.items() if name in known})
            for message in document.get("messages", [])
        ]
        return cls(**fields)

    def to_dict(self):
        """The JSON document to store."""
        return asdict(self)

    def message(self, mid):
        """Return the message with id mid or raise NotFound."""
        for message in self.messages:
            if message.id == mid:
                return message
        raise NotFound(mid)

    def history_before(self, mid):
        """The turns the model sees when answering message mid: finished, non-empty ones."""
        turns = []
        for message in self.messages:
            if message.id == mid:
                break
            if message.role == "user" or (message.status in (DONE, STOPPED, INTERRUPTED) and message.content):
                turns.append({"role": message.role, "content": message.content})
                if message.attachments:
                    turns[-1]["attachments"] = message.attachments
        return turns

    @property
    def last_user_id(self):
        """The id of the last user message (the one that may be edited), or None."""
        return next((message.id for message in reversed(self.messages) if message.role == "user"), None)

    @property
    def last_reply_id(self):
        """The id of the last assistant message (the one that may be regenerated), or None."""
        return next((message.id for message in reversed(self.messages) if message.role == "assistant"), None)

    def reply_before(self, mid):
        """The last assistant message before message mid, or None."""
        position = [message.id for message in self.messages].index(mid)
        return next((message for message in reversed(self.messages[:position]) if message.role == "assistant"), None)

    @property
    def display_title(self):
        """The title to show: the conversation's, or a placeholder until it has one."""
        return display_title(self.title)

    def add_exchange(self, text, model, attachments=None):
        """Append the user's text (with its files' references) and its reply, streaming from now; return the reply."""
        stamp = now()
        user = Message(id=new_id(), role="user", content=text, created_at=stamp, attachments=attachments or None)
        reply = Message(id=new_id(), role="assistant", content="", created_at=stamp)
        reply.claim(model)
        self.messages += [user, reply]
        self.model = model
        return reply

    def reply(self, mid):
        """The assistant message mid, or NotFound."""
        message = self.message(mid)
        if message.role != "assistant":
            raise NotFound(mid)
        return message

    def restart_reply(self, mid, lease_seconds):
        """Generate reply mid again (retry or regenerate); return it, or None when it is still running.

        A reply that failed, stopped or was interrupted can be retried anywhere;
        a finished one regenerated only when it is the last.
        """
        message = self.reply(mid)
        if message.status == DONE and mid != self.last_reply_id:
            raise NotFound(mid)
        if message.is_running(lease_seconds):
            return None
        message.claim(message.model or self.model)
        return message

    def edit_last(self, mid, text, model):
        """Replace the last user message mid with text, drop what followed, and return the new reply."""
        if mid != self.last_user_id:
            raise NotFound(mid)  # only the last user message can be edited
        position = [message.id for message in self.messages].index(mid)
        created_at = self.messages[position].created_at
        del self.messages[position:]
        reply = self.add_exchange(text, model)
        self.messages[-2].id, self.messages[-2].created_at = mid, created_at
        return reply

    def stop_reply(self, mid, lease_seconds):
        """End reply mid as stopped when no live job can (its job died); True when it changed."""
        message = self.reply(mid)
        if message.finished or message.is_running(lease_seconds):
            return False
        message.finish(message.content, STOPPED)
        return True

    def interrupt_dead_replies(self, lease_seconds):
        """Mark replies whose job died (no lease renewed within lease_seconds) as interrupted; True when any changed."""
        dead = [
            message
            for message in self.messages
            if message.role == "assistant" and not message.finished and not message.is_running(lease_seconds)
        ]
        for message in dead:
            message.interrupt()
        return bool(dead)

    def set_auto_title(self, title):
        """Give the conversation a generated title, unless it has one (least of all one the user chose)."""
        if self.title is not None:
            return False
        self.title, self.title_source = title, "auto"
        return True

    def to_markdown(self):
        """The conversation as a Markdown document, for export."""
        lines = [f"# {self.display_title}", ""]
        for message in self.messages:
            speaker = "You" if message.role == "user" else f"Assistant ({message.model})"
            lines += [f"**{speaker}:**", "", message.content, ""]
        return "\n".join(lines)

    @property
    def first_user_text(self):
        """The first thing the user said, or an empty string."""
        return next((message.content for message in self.messages if message.role == "user"), "")

    def index_entry(self):
        """The summary the sidebar lists."""
        return {"id": self.id, "title": self.title, "updated_at": self.updated_at, "model": self.model}
