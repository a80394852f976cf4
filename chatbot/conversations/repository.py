"""The repository: one user's conversations in a Store, each write a compare-and-swap.

Keys (keys.py): users/{uid}/index.json, the sidebar's list [{id, title, updated_at, model}] newest
first, one entry a line; users/{uid}/conversations/{cid}.json, the whole conversation.
"""

import json
from concurrent.futures import ThreadPoolExecutor

from .. import filestore, keys
from ..storage import read_json, update_json
from .model import FORKED, MAX_TITLE_CHARS, CapReached, Conversation, Message, NotFound, is_valid_id, new_id, now

# Search reads message text from at most this many of the newest conversations.
SEARCH_DEPTH = 300
# The sidebar lists this many conversations a page.
INDEX_PAGE = 50


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
        return keys.index(self.uid)

    def _key(self, cid):
        if not is_valid_id(cid):
            raise NotFound(cid)
        return keys.conversation(self.uid, cid)

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

    def start(self, text, model, attachments=None):
        """Create a conversation whose first message is text (and files); return it and its streaming reply."""
        self._check_room()
        stamp = now()
        conversation = Conversation(id=new_id(), model=model, created_at=stamp, updated_at=stamp)
        reply = conversation.add_exchange(text, model, attachments=attachments)
        self._create(conversation)
        return conversation, reply

    def start_copy(self, title, model, messages, instructions=None, files_from=None, title_source="auto", charge=None):
        """Create a conversation holding finished copies of messages ({role, content, model, attachments}), one
        path; return it.

        "Continue this chat" on a shared snapshot and "Fork from here": the copy is the user's own, with new ids,
        and so are its files: those the messages reference in files_from (a filestore place) are copied into
        this user's first, and deleted again when the conversation cannot be stored. A fork's title_source is
        FORKED: its "Fork of …" gives way to a title of its first own exchange. charge is called with the bytes
        of the files before they are copied (filestore.copy_messages), and may refuse.
        """
        self._check_room()
        copies = []
        if files_from is not None:
            target = filestore.user_place(self.uid)
            messages, copies = filestore.copy_messages(self.store, messages, files_from, target, charge)
        try:
            return self._create_copy(title, model, messages, instructions, title_source)
        except BaseException:
            filestore.delete(self.store, self.uid, copies)
            raise

    def _create_copy(self, title, model, messages, instructions, title_source):
        stamp = now()
        conversation = Conversation(
            id=new_id(),
            model=model,
            created_at=stamp,
            updated_at=stamp,
            title=title,
            title_source=title_source if title else None,
            instructions=instructions or None,
        )
        parent = None
        for message in messages:
            if message.get("role") not in ("user", "assistant"):
                continue
            copy = Message(
                id=new_id(),
                role=message["role"],
                content=message["content"],
                created_at=stamp,
                model=message.get("model"),
                attachments=message.get("attachments") or None,
                parent=parent,
            )
            conversation.messages.append(copy)
            parent = copy.id
        conversation.current = parent
        self._create(conversation)
        return conversation

    def fork(self, cid, mid, charge=None):
        """A new conversation holding the path of conversation cid up to message mid (and its instructions), with
        copies of its files (deleting the original leaves the fork whole), charged first (start_copy)."""
        source = self.get(cid)
        messages = [
            {
                "role": message.role,
                "content": message.content,
                "model": message.model,
                "attachments": message.attachments,
            }
            for message in source.path_to(mid)
            if message.content or message.role == "user"
        ]
        title = f"Fork of {source.display_title}"[:MAX_TITLE_CHARS]
        return self.start_copy(
            title,
            source.model,
            messages,
            source.instructions,
            filestore.user_place(self.uid),
            title_source=FORKED,
            charge=charge,
        )

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

    def add_exchange(self, cid, text, model, after=None, attachments=None):
        """Add the user's text (and files) below message `after` (the current leaf by default) and its streaming
        reply; return (conversation, reply)."""
        return self._change_reply(
            cid, self._capped(lambda conversation: conversation.add_exchange(text, model, after, attachments))
        )

    def restart_reply(self, cid, mid, lease_seconds):
        """Retry or regenerate reply mid; return (conversation, reply), reply None when it is still running."""
        return self._change_reply(
            cid, self._capped(lambda conversation: conversation.restart_reply(mid, lease_seconds))
        )

    def edit(self, cid, mid, text, model):
        """Add a version of user message mid with text, and its streaming reply; return (conversation, reply)."""
        return self._change_reply(cid, self._capped(lambda conversation: conversation.edit(mid, text, model)))

    def switch(self, cid, mid):
        """Show message mid's version (the newest leaf under it); return the conversation."""
        return self.update(cid, lambda conversation: conversation.switch(mid), touch=False)

    def set_instructions(self, cid, instructions):
        """Set the conversation's own instructions (None or "" for none); return the conversation."""
        return self.update(cid, lambda conversation: setattr(conversation, "instructions", instructions or None))

    def _capped(self, change):
        """change, refused (CapReached) when it would leave more messages in the tree than allowed."""

        def capped(conversation):
            result = change(conversation)
            if self.max_messages is not None and len(conversation.messages) > self.max_messages:
                raise CapReached(
                    f"This conversation has reached {self.max_messages:,} messages, the most allowed. "
                    "Start a new chat to go on."
                )
            return result

        return capped

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
        """Return [(entry, snippet, mid)] for conversations whose title or messages (on any branch) contain every
        word; mid is the matching message (None for a title match), to open its branch."""
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
            # The path shown first, so a match there opens the conversation as it is.
            shown = conversation.path
            ids = {message.id for message in shown}
            others = [message for message in conversation.messages if message.id not in ids]
            for message in shown + others:
                if matches(message.content):
                    return message.content, message.id
            return None

        # Titles first, from the index alone; message text by reading the newest conversations.
        with ThreadPoolExecutor(max_workers=8) as pool:
            snippets = list(pool.map(snippet_of, entries[:SEARCH_DEPTH]))
        results = []
        for position, entry in enumerate(entries):
            snippet, mid = (snippets[position] if position < len(snippets) else None) or (None, None)
            if matches(entry.get("title") or "") or snippet:
                results.append((entry, snippet, mid))
        return results

    def delete(self, cid):
        """Remove a conversation and its index entry; NotFound when there is neither.

        An index entry whose conversation is gone (an index write failed after the
        conversation was deleted) is removed too, so no entry stays that cannot be deleted.
        """
        key = self._key(cid)
        found = self.store.read(key)
        existed = found is not None
        if existed:
            self.store.delete(key)
            filestore.delete(self.store, self.uid, filestore.conversation_files(json.loads(found[0])))
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
