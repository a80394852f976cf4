"""The model: a Conversation and its Messages (a reply's states and how they change), ids and times.

A conversation is a tree: every message has a parent (None for a first message), and the conversation
stores its current leaf. The path from the root to the current leaf is what the page shows and what
the model reads. Editing a message adds a sibling, regenerating a reply adds a sibling reply: nothing
is overwritten. Pure: nothing here reads or writes storage (repository.py does).
"""

from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone

from ..keys import is_valid_id, new_id  # noqa: F401  (ids are the model's too: conversations exports them)

MAX_TITLE_CHARS = 100
# The stored document's format: 2 is the tree (each message's parent, the current leaf). A document with
# no version (1) is a flat list, read as one path; it is written as version 2 on its next write.
FORMAT_VERSION = 2
# A conversation's own instructions (its system prompt) are capped at this many characters.
MAX_INSTRUCTIONS_CHARS = 4000

# A reply's life: streaming (its job runs) -> done | error | stopped | interrupted.
# What was generated is kept in every end state. "pending" is only found in
# conversations stored before replies started generating at once; it reads
# like an interrupted reply.
PENDING, STREAMING, DONE, ERROR, STOPPED = "pending", "streaming", "done", "error", "stopped"
INTERRUPTED = "interrupted"
FINISHED = (DONE, ERROR, STOPPED, INTERRUPTED)
_READ = (DONE, STOPPED, INTERRUPTED, STREAMING)  # the replies the model reads again (history_before)
# A streaming reply's job saves its text every so often, which renews its lease; a lease older than
# lease_seconds (REPLY_LEASE_SECONDS, config.py) belongs to a process that died: the reply reads as interrupted.
INTERRUPTED_NOTE = "The reply was interrupted (the server restarted). What was generated is kept."
# Shown for a conversation with no title yet.
UNTITLED = "Untitled chat"
# The title_source of a fork's "Fork of …": it says where the fork came from until its first own exchange titles it.
FORKED = "fork"


class NotFound(Exception):
    """No such conversation or message for this user."""


class CapReached(Exception):
    """A user has as many conversations, or a conversation as many messages, as allowed; str() says so."""


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
    # The message this one answers or follows; None for a first message (a root of the tree).
    parent: str | None = None

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


@dataclass(frozen=True)
class Version:
    """Where a message stands among its siblings: its place (from 1), their number, and the ids of the
    previous and the next version (None at either end)."""

    place: int
    total: int
    previous: str | None
    next: str | None


# A message's stored fields, in order (Conversation.to_dict).
_MESSAGE_FIELDS = tuple(item.name for item in fields(Message))


@dataclass
class Conversation:
    """A conversation: every message of its tree (in the order they were made), and its current leaf."""

    id: str
    model: str
    created_at: str
    updated_at: str
    title: str | None = None
    title_source: str | None = None  # "auto" (generated), "fork" (FORKED: "Fork of …") or "user" (renamed)
    messages: list[Message] = field(default_factory=list)
    current: str | None = None  # the leaf shown: the path from the root to it is the conversation as read
    instructions: str | None = None  # the conversation's own system prompt
    version: int = FORMAT_VERSION

    @classmethod
    def from_dict(cls, document):
        """Build from a stored JSON document; one stored before trees (no version) reads as a single path."""
        known = Message.__dataclass_fields__
        fields = {name: value for name, value in document.items() if name in cls.__dataclass_fields__}
        # Fields of older versions (claimed_at, stop_requested) are dropped.
        fields["messages"] = [
            Message(**{name: value for name, value in message.items() if name in known})
            for message in document.get("messages", [])
        ]
        fields.pop("version", None)  # a document with none (a flat list) is written as the current version
        return cls(**fields)

    def __post_init__(self):
        # A flat list (a document stored before trees, or messages listed by hand): no current leaf and no
        # parents, so it reads as one path, each message following the one before.
        if self.current is None and self.messages and all(message.parent is None for message in self.messages):
            for before, message in zip([None, *self.messages], self.messages, strict=False):
                message.parent = before.id if before else None
            self.current = self.messages[-1].id

    def to_dict(self):
        """The JSON document to store (built field by field: dataclasses.asdict deep-copies every value, which
        took most of a send's time on a conversation of 1,000 messages)."""
        document = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "messages":
                value = [{name: getattr(message, name) for name in _MESSAGE_FIELDS} for message in value]
            document[item.name] = value
        return document

    def message(self, mid):
        """Return the message with id mid or raise NotFound."""
        for message in self.messages:
            if message.id == mid:
                return message
        raise NotFound(mid)

    # The tree.

    def path_to(self, mid):
        """The messages from the root down to message mid (included)."""
        by_id = {message.id: message for message in self.messages}
        path, message = [], by_id.get(mid)
        if message is None:
            raise NotFound(mid)
        while message is not None and len(path) <= len(by_id):  # the bound guards against a cycle
            path.append(message)
            message = by_id.get(message.parent)
        path.reverse()
        return path

    @property
    def path(self):
        """The messages shown: from the root down to the current leaf."""
        if self.current is None:
            return []
        try:
            return self.path_to(self.current)
        except NotFound:  # a current leaf that went away: show the newest message's path
            return self.path_to(self.messages[-1].id) if self.messages else []

    def children(self, mid):
        """The messages that follow message mid (None: the first messages), oldest first."""
        return [message for message in self.messages if message.parent == mid]

    def siblings(self, mid):
        """Message mid and its other versions (the messages with its parent), oldest first."""
        return self.children(self.message(mid).parent)

    def versions(self):
        """{message id: Version} for the path's messages that have siblings (the version control's data)."""
        groups = {}
        for message in self.messages:
            groups.setdefault(message.parent, []).append(message.id)
        shown = {}
        for message in self.path:
            group = groups[message.parent]
            if len(group) > 1:
                place = group.index(message.id)
                previous = group[place - 1] if place > 0 else None
                following = group[place + 1] if place + 1 < len(group) else None
                shown[message.id] = Version(place + 1, len(group), previous, following)
        return shown

    def leaf_under(self, mid):
        """The newest leaf below message mid: follow the most recently made child down."""
        leaf = self.message(mid)
        while children := self.children(leaf.id):
            leaf = children[-1]
        return leaf

    def switch(self, mid):
        """Show message mid's version: the current leaf becomes the newest leaf under it; False when unchanged."""
        leaf = self.leaf_under(mid).id
        if leaf == self.current:
            return False
        self.current = leaf
        return True

    @property
    def leaf_id(self):
        """The id of the last message shown, or None."""
        path = self.path
        return path[-1].id if path else None

    def history_before(self, mid):
        """The turns the model sees when answering message mid: its path's non-empty ones but failed replies. A
        reply still streaming (the user sent while it was written) is there as far as it has come: the user
        answered what they read. (build_prompt merges what is left of two turns of one role in a row.)"""
        turns = []
        for message in self.path_to(mid)[:-1]:
            if message.role == "user" or (message.status in _READ and message.content):
                turns.append({"role": message.role, "content": message.content})
                if message.attachments:
                    turns[-1]["attachments"] = message.attachments
        return turns

    @property
    def last_user_id(self):
        """The id of the last user message shown, or None."""
        return next((message.id for message in reversed(self.path) if message.role == "user"), None)

    @property
    def last_reply_id(self):
        """The id of the last assistant message shown, or None."""
        return next((message.id for message in reversed(self.path) if message.role == "assistant"), None)

    def reply_before(self, mid):
        """The last assistant message before message mid on its path, or None."""
        return next((message for message in reversed(self.path_to(mid)[:-1]) if message.role == "assistant"), None)

    @property
    def display_title(self):
        """The title to show: the conversation's, or a placeholder until it has one."""
        return display_title(self.title)

    # Changes.

    def add_exchange(self, text, model, after=None, attachments=None):
        """Add the user's text (with its files' references) below message `after` (the current leaf by default)
        and its reply, streaming from now; the reply becomes the current leaf; return it.

        A message follows a reply (or nothing); NotFound for a user message that is answered, or followed, already.
        One that nothing follows is the leaf of a fork or a copy (made there, or whose empty reply was not copied).
        """
        parent = self.message(after).id if after else self.leaf_id
        if parent and self.message(parent).role == "user" and self.children(parent):
            raise NotFound(parent)
        stamp = now()
        user = Message(
            id=new_id(), role="user", content=text, created_at=stamp, parent=parent, attachments=attachments or None
        )
        reply = Message(id=new_id(), role="assistant", content="", created_at=stamp, parent=user.id)
        reply.claim(model)
        self.messages += [user, reply]
        self.model, self.current = model, reply.id
        return reply

    def reply(self, mid):
        """The assistant message mid, or NotFound."""
        message = self.message(mid)
        if message.role != "assistant":
            raise NotFound(mid)
        return message

    def restart_reply(self, mid, lease_seconds):
        """Generate reply mid again; return the reply that streams now, or None when mid is still running.

        Regenerate (a finished reply, or one that others follow) adds a sibling reply, so the old one is
        kept. Retry (a reply that failed, stopped or was interrupted, with nothing after it) restarts the
        same reply in place: what it holds is an error or a fragment the user asked to replace.
        """
        message = self.reply(mid)
        if message.is_running(lease_seconds):
            return None
        if message.status == DONE or self.children(mid):
            reply = Message(id=new_id(), role="assistant", content="", created_at=now(), parent=message.parent)
            self.messages.append(reply)
        else:
            reply = message
        reply.claim(message.model or self.model)
        self.current = reply.id
        return reply

    def edit(self, mid, text, model):
        """Edit user message mid: a sibling with text, and a reply under it (the current leaf); return the reply."""
        message = self.message(mid)
        if message.role != "user":
            raise NotFound(mid)
        stamp = now()
        # The new version keeps the edited message's files (the same stored files: both versions reference them).
        user = Message(
            id=new_id(),
            role="user",
            content=text,
            created_at=stamp,
            parent=message.parent,
            attachments=message.attachments,
        )
        reply = Message(id=new_id(), role="assistant", content="", created_at=stamp, parent=user.id)
        reply.claim(model)
        self.messages += [user, reply]
        self.model, self.current = model, reply.id
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
        """Give the conversation a generated title, unless it has its own (least of all one the user chose)."""
        if self.title is not None and self.title_source != FORKED:
            return False
        self.title, self.title_source = title, "auto"
        return True

    def shown_path(self, leaf=None):
        """The path a page shows: down to message leaf (the page's own, as its links name it), else the current
        path. Share and export take the page's leaf: another tab, or a search result's ?m=, may show a branch
        other than the stored one. NotFound when leaf is no message of this conversation."""
        return self.path_to(leaf) if leaf else self.path

    def to_markdown(self, leaf=None):
        """The conversation as shown (the path down to leaf, or the current path) as a Markdown document."""
        lines = [f"# {self.display_title}", ""]
        if self.instructions:
            lines += ["**Instructions:**", "", self.instructions, ""]
        for message in self.shown_path(leaf):
            speaker = "You" if message.role == "user" else f"Assistant ({message.model})"
            lines += [f"**{speaker}:**", "", message.content, ""]
        return "\n".join(lines)

    def first_user_text_to(self, mid):
        """The first thing the user said on message mid's path, or an empty string."""
        return next((message.content for message in self.path_to(mid) if message.role == "user"), "")

    def index_entry(self):
        """The summary the sidebar lists."""
        return {"id": self.id, "title": self.title, "updated_at": self.updated_at, "model": self.model}
