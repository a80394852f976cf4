"""The domain: conversations and their messages, stored as JSON documents in a Store.

Keys (the same in every backend):
    users/{uid}/index.json                [{id, title, updated_at, model}], newest first
    users/{uid}/conversations/{cid}.json  the whole conversation
"""

import json
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone

from .storage import read_json, update_json

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{16}")
MAX_TITLE_CHARS = 100
# Search reads message text from at most this many of the newest conversations.
SEARCH_DEPTH = 300
# The sidebar lists this many conversations a page.
INDEX_PAGE = 50

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

    def add_exchange(self, text, model):
        """Append the user's text and its reply, streaming from now; return the reply."""
        stamp = now()
        user = Message(id=new_id(), role="user", content=text, created_at=stamp)
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


def encode_index(entries):
    """JSON with one entry a line, so the newest can be read without parsing the rest."""
    lines = [json.dumps(entry, ensure_ascii=False, separators=(",", ":")) for entry in entries]
    return ("[\n" + ",\n".join(lines) + "\n]").encode()


class Conversations:
    """One user's conversations in a Store. Every write is a compare-and-swap."""

    def __init__(self, store, uid, max_conversations=None, max_messages=None):
        if not is_valid_id(uid):
            raise ValueError("invalid user id")
        self.store = store
        self.uid = uid
        # Caps on what one user can store (None: no cap); reaching one raises CapReached.
        self.max_conversations = max_conversations
        self.max_messages = max_messages

    def _index_key(self):
        return f"users/{self.uid}/index.json"

    def _key(self, cid):
        if not is_valid_id(cid):
            raise NotFound(cid)
        return f"users/{self.uid}/conversations/{cid}.json"

    def index(self, limit=None):
        """The sidebar's list of {id, title, updated_at, model}, newest first (one read).

        With limit, only the newest entries are parsed: the index is stored one
        entry a line, so a page view's cost does not grow with the whole list.
        """
        found = self.store.read(self._index_key())
        if found is None:
            return []
        lines = found[0].split(b"\n", limit + 1) if limit is not None else []
        if not lines or lines[0] != b"[":  # the whole list, or an index not written one entry a line
            return json.loads(found[0])[:limit]
        return [json.loads(line.rstrip(b",")) for line in lines[1 : limit + 1] if line not in (b"]", b"")]

    def index_page(self):
        """The entries the sidebar's first page shows, and one more to tell whether there are older ones."""
        return self.index(limit=INDEX_PAGE + 1)

    def get(self, cid):
        """Return the conversation or raise NotFound."""
        document, _ = read_json(self.store, self._key(cid))
        if document is None:
            raise NotFound(cid)
        return Conversation.from_dict(document)

    def start(self, text, model):
        """Create a conversation whose first message is text; return it and its streaming reply."""
        self._check_room()
        stamp = now()
        conversation = Conversation(id=new_id(), model=model, created_at=stamp, updated_at=stamp)
        reply = conversation.add_exchange(text, model)
        self._create(conversation)
        return conversation, reply

    def start_copy(self, title, model, messages):
        """Create a conversation holding finished copies of messages ({role, content, model}); return it.

        "Continue this chat" on a shared snapshot: the copy is the visitor's own, with new ids.
        """
        self._check_room()
        stamp = now()
        conversation = Conversation(
            id=new_id(),
            model=model,
            created_at=stamp,
            updated_at=stamp,
            title=title,
            title_source="auto" if title else None,
        )
        conversation.messages = [
            Message(
                id=new_id(),
                role=message["role"],
                content=message["content"],
                created_at=stamp,
                model=message.get("model"),
            )
            for message in messages
            if message.get("role") in ("user", "assistant")
        ]
        self._create(conversation)
        return conversation

    def _check_room(self):
        if self.max_conversations is not None and len(self.index()) >= self.max_conversations:
            raise CapReached(
                f"You have {self.max_conversations:,} conversations, the most allowed. Delete some to start a new one."
            )

    def _create(self, conversation):
        """Store a new conversation, then list it in the index."""

        def create(existing):
            if existing is not None:  # a 96-bit id collided: vanishingly unlikely, never overwrite
                raise RuntimeError("conversation id collision")
            return conversation.to_dict()

        update_json(self.store, self._key(conversation.id), create)
        self._index_upsert(conversation)

    def add_exchange(self, cid, text, model):
        """Append the user's text and its streaming reply; return (conversation, reply)."""

        def add(conversation):
            if self.max_messages is not None and len(conversation.messages) + 2 > self.max_messages:
                raise CapReached(
                    f"This conversation has reached {self.max_messages:,} messages, the most allowed. "
                    "Start a new chat to go on."
                )
            return conversation.add_exchange(text, model)

        return self._change_reply(cid, add)

    def restart_reply(self, cid, mid, lease_seconds):
        """Retry or regenerate reply mid; return (conversation, reply), reply None when it is still running."""
        return self._change_reply(cid, lambda conversation: conversation.restart_reply(mid, lease_seconds))

    def edit(self, cid, mid, text, model):
        """Replace the last user message mid with text and drop what followed; return (conversation, reply)."""
        return self._change_reply(cid, lambda conversation: conversation.edit_last(mid, text, model))

    def _change_reply(self, cid, change):
        replies = []

        def apply(conversation):
            replies[:] = [change(conversation)]
            return replies[0] is not None

        conversation = self.update(cid, apply)
        return conversation, conversation.message(replies[0].id) if replies[0] else None

    def save_progress(self, cid, mid, content):
        """Keep a streaming reply's text so far (and renew its lease); NotFound when it went away."""
        return self.update(cid, lambda conversation: conversation.reply(mid).save_progress(content), touch=False)

    def finish_reply(self, cid, mid, content, status, error=None):
        """Save a reply's end: its text, its status and any error."""
        return self.update(cid, lambda conversation: conversation.reply(mid).finish(content, status, error))

    def stop_reply(self, cid, mid, lease_seconds):
        """Stop reply mid in storage when no live job can; return the conversation."""
        return self.update(cid, lambda conversation: conversation.stop_reply(mid, lease_seconds), touch=False)

    def interrupt_dead_replies(self, cid, lease_seconds):
        """Mark the conversation's replies whose job died as interrupted; return the conversation."""
        return self.update(cid, lambda conversation: conversation.interrupt_dead_replies(lease_seconds), touch=False)

    def set_auto_title(self, cid, title):
        """Title the conversation unless it has a title; return the conversation."""
        return self.update(cid, lambda conversation: conversation.set_auto_title(title))

    def update(self, cid, change, touch=True):
        """Apply change(conversation) -> False to skip the write; return the result.

        The change is re-applied on a concurrent write, so it must depend only
        on the conversation it is given. touch=False is for bookkeeping the
        sidebar does not show (a reply claimed, a stop asked): updated_at and
        the index stay as they are, which saves the index's read and write.
        """
        changed = False

        def apply(document):
            nonlocal changed
            if document is None:
                raise NotFound(cid)
            conversation = Conversation.from_dict(document)
            changed = change(conversation) is not False
            if not changed:
                return None
            if touch:
                conversation.updated_at = now()
            return conversation.to_dict()

        conversation = Conversation.from_dict(update_json(self.store, self._key(cid), apply))
        if changed and touch:
            self._index_upsert(conversation)
        return conversation

    def rename(self, cid, title):
        """Set a title the user chose; the generator never overwrites it."""

        def set_title(conversation):
            conversation.title, conversation.title_source = title, "user"

        return self.update(cid, set_title)

    def search(self, query):
        """Return [(entry, snippet)] for conversations whose title or messages contain every word."""
        words = [word.lower() for word in query.split()]
        if not words:
            return []
        entries = self.index()

        def matches(text):
            text = text.lower()
            return all(word in text for word in words)

        def snippet_of(entry):
            try:
                conversation = self.get(entry["id"])
            except NotFound:
                return None
            for message in conversation.messages:
                if matches(message.content):
                    return message.content
            return None

        # Titles first, from the index alone; message text by reading the newest conversations.
        with ThreadPoolExecutor(max_workers=8) as pool:
            snippets = list(pool.map(snippet_of, entries[:SEARCH_DEPTH]))
        results = []
        for position, entry in enumerate(entries):
            snippet = snippets[position] if position < len(snippets) else None
            if matches(entry.get("title") or "") or snippet:
                results.append((entry, snippet))
        return results

    def delete(self, cid):
        """Remove a conversation and its index entry; NotFound when there is neither.

        An index entry whose conversation is gone (an index write failed after the
        conversation was deleted) is removed too, so no entry stays that cannot be deleted.
        """
        key = self._key(cid)
        existed = self.store.read(key) is not None
        if existed:
            self.store.delete(key)
        listed = False

        def drop(entries):
            nonlocal listed
            kept = [entry for entry in entries or [] if entry["id"] != cid]
            listed = len(kept) != len(entries or [])
            return kept if listed else None

        update_json(self.store, self._index_key(), drop, encode=encode_index)
        if not (existed or listed):
            raise NotFound(cid)

    def _index_upsert(self, conversation):
        # Written after the conversation, so a crash in between leaves the
        # index stale, never pointing at nothing; the next write repairs it.
        entry = conversation.index_entry()

        def upsert(entries):
            entries = entries or []
            if any(
                existing["id"] == entry["id"] and existing["updated_at"] >= entry["updated_at"] for existing in entries
            ):
                return None  # a newer write already updated it
            # First, so that the stable sort keeps the newest first among equal timestamps.
            entries = [entry] + [existing for existing in entries if existing["id"] != entry["id"]]
            entries.sort(key=lambda item: item["updated_at"], reverse=True)
            return entries

        update_json(self.store, self._index_key(), upsert, encode=encode_index)
