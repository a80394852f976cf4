"""Shared snapshots of conversations: read-only links that anyone who has them can read.

Keys (keys.py; in the same Store as the conversations, so on S3 in production):
    shares/{sid}.json        {id, uid, cid, created_at, title, model, messages: [{role, content, model,
                             attachments}]}
    shares/{sid}/files/...   copies of the files the snapshot shows (filestore.py), under ids of their own
    users/{uid}/shares.json  [{id, cid, title, created_at}], newest first: the owner's links

A snapshot is a copy made when the link is made, so it never changes when the
conversation does. Its id is random (128 bits from `secrets`) and has nothing
to do with the conversation's id, so a link tells nothing about anything else.
Its files are copies too, so the link holder sees them
without ever reaching the owner's own files, and a revoke deletes them with the snapshot.
Who may revoke a link is what the owner's list says: the list moves with the
rest of a guest's data when the guest signs up (accounts.move_conversations).
Deleting a conversation revokes its links; deleting all of a user's data
revokes all of them (see the README, "Sharing").
"""

import re
import secrets

from . import filestore, keys
from .conversations import CapReached, NotFound, is_valid_id, now
from .storage import read_json, update_json

SHARE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}")
# Each link is a stored copy of a conversation, and every new one rewrites the owner's list: a cap on both.
MAX_LINKS = 100


def new_share_id():
    """A random, URL-safe share id of 22 characters (a conversation's id has 16)."""
    return secrets.token_urlsafe(16)


def is_share_id(value):
    """True when value has the shape of a share id."""
    return bool(SHARE_ID_PATTERN.fullmatch(value or ""))


def _share_key(sid):
    if not is_share_id(sid):
        raise NotFound(sid)
    return keys.share(sid)


def read_snapshot(store, sid):
    """The snapshot a link shows, or NotFound (never made, or revoked)."""
    document, _ = read_json(store, _share_key(sid))
    if document is None:
        raise NotFound(sid)
    return document


def shared_file(store, sid, fid):
    """What file fid of snapshot sid is ({name, type, kind}, its copy's own record: a file's request reads that,
    not the whole snapshot), or NotFound (not a file of this snapshot, or the link was revoked)."""
    if not (is_share_id(sid) and is_valid_id(fid)):
        raise NotFound(fid)
    about, _ = read_json(store, keys.share_file_about(sid, fid))
    if about is None:
        raise NotFound(fid)
    return about


def snapshot_of(conversation, sid, uid, leaf=None):
    """The document a share of conversation stores: what was said on the path down to leaf (the page's, else the
    current path), no ids of messages or states; the files' references are still the owner's (create copies
    them). NotFound when leaf is no message of the conversation."""
    messages = [
        {"role": message.role, "content": message.content, "model": message.model, "attachments": message.attachments}
        for message in conversation.shown_path(leaf)  # the branch on the owner's screen, not the others
        if message.content
    ]
    return {
        "id": sid,
        "uid": uid,
        "cid": conversation.id,
        "created_at": now(),
        "title": conversation.title,
        "model": conversation.model,
        "messages": messages,
        "instructions": conversation.instructions,
    }


class Shares:
    """One user's share links in a Store."""

    def __init__(self, store, uid):
        self.store = store
        self.uid = uid

    def _index_key(self):
        return keys.share_list(self.uid)

    def links(self, cid=None):
        """The user's links, newest first; with cid, only that conversation's."""
        entries, _ = read_json(self.store, self._index_key())
        return [entry for entry in entries or [] if cid is None or entry["cid"] == cid]

    def create(self, conversations, cid, charge=None, leaf=None):
        """Make a new link to a snapshot of this user's conversation cid as it is now, the path down to message
        leaf (the one on the owner's screen; the current path without); return its entry.

        NotFound when the conversation or leaf is not theirs, or when it is deleted (or the link revoked) meanwhile.
        charge is called with the bytes of the files the snapshot copies, before it copies them, and may refuse
        (the link is then taken back).
        """
        conversation = conversations.get(cid)
        sid = new_share_id()
        snapshot = snapshot_of(conversation, sid, self.uid, leaf)
        entry = {"id": sid, "cid": conversation.id, "title": conversation.title, "created_at": snapshot["created_at"]}

        def add(entries):
            # The cap is checked on the list being written, so one read serves both.
            if len(entries or []) >= MAX_LINKS:
                raise CapReached(f"You have {MAX_LINKS} share links, the most allowed. Revoke some to make another.")
            return [entry] + (entries or [])

        # The list first: a crash in between leaves a listed link that shows nothing (and can be revoked),
        # never a readable snapshot its owner cannot see or revoke.
        update_json(self.store, self._index_key(), add)
        try:  # the files, before the snapshot that shows them
            snapshot["messages"], _ = filestore.copy_messages(
                self.store, snapshot["messages"], filestore.user_place(self.uid), filestore.share_place(sid), charge
            )
        except BaseException:
            self._revoke([entry])
            raise

        def create(existing):
            if existing is not None:  # 128 random bits collided: never overwrite someone's snapshot
                raise RuntimeError("share id collision")
            return snapshot

        update_json(self.store, _share_key(sid), create)
        # A delete that read the list before the entry was in it, or a revoke that deleted the snapshot
        # before it was written, missed this one: look again now that it exists, and take it back if so.
        if not any(listed["id"] == sid for listed in self.links()) or not _exists(conversations, cid):
            self._revoke([entry])
            raise NotFound(sid)
        return entry

    def revoke(self, sid):
        """Delete link sid of this user (its snapshot first); return its entry, or NotFound when it is not theirs."""
        entry = next((entry for entry in self.links() if entry["id"] == sid), None)
        if entry is None:
            raise NotFound(sid)
        self._revoke([entry])
        return entry

    def revoke_conversation(self, cid):
        """Revoke every link to conversation cid (it is being deleted); return how many."""
        return self._revoke(self.links(cid))

    def revoke_all(self):
        """Revoke every link of this user (their data is being deleted); return how many."""
        count = self._revoke(self.links())
        self.store.delete(self._index_key())
        return count

    def _revoke(self, entries):
        """Delete the entries' snapshots, take them off the list in one write, and delete the snapshots again.

        Snapshots first, so that a crash leaves listed links (which can be revoked), never unlisted readable
        ones; and again last, for a snapshot that a link being made meanwhile wrote after the first delete
        (create looks at the list after writing it, so it catches one written after this list write).
        Returns how many.
        """
        gone = {entry["id"] for entry in entries}
        for sid in gone:
            self._delete_snapshot(sid)
        if gone:

            def drop(listed):
                kept = [entry for entry in listed or [] if entry["id"] not in gone]
                return kept if len(kept) != len(listed or []) else None  # nothing to drop: no write

            update_json(self.store, self._index_key(), drop)
            for sid in gone:
                self._delete_snapshot(sid)
        return len(entries)

    def _delete_snapshot(self, sid):
        """The copies of its files first (each answers 404 once its record is gone), then the snapshot."""
        for key in list(self.store.keys(keys.share_files(sid))):
            self.store.delete(key)
        self.store.delete(_share_key(sid))


def _exists(conversations, cid):
    try:
        conversations.get(cid)
    except NotFound:
        return False
    return True
