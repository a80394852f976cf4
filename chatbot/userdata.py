"""Everything stored about a user, as a whole: list, export, delete, purge guests, count usage.

Works on the stored documents under the keys the rest of the app uses
(keys.py: users/{uid}/..., accounts/{username}.json), for the operator's commands
(cli.py) and a user's own account page (account.py). Nothing here knows
about HTTP or click.
"""

import json
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

from zipstream import ZipStream

from . import filestore, identities, keys
from .conversations import Conversation, Conversations, is_valid_id
from .shares import Shares
from .storage import StorageError, read_json, update_json


def _user_ids(store):
    """The ids of every user with something stored under users/{uid}/, sorted."""
    uids = {keys.uid_of(key) for key in store.keys(keys.USERS)}
    return sorted(uid for uid in uids if is_valid_id(uid))


def _parse_time(value):
    return datetime.fromisoformat(value) if value else None


def accounts(store):
    """Every account as {username, uid, created_at}, by username."""
    found = []
    for key in sorted(store.keys(keys.ACCOUNTS)):
        username = keys.username_of(key)
        if username is None:
            continue
        document, _ = read_json(store, key)
        if document is not None:
            found.append(
                {
                    "username": username,
                    "uid": document.get("uid"),
                    "created_at": document.get("created_at"),
                }
            )
    return found


def account(store, username):
    """One account as {username, uid, created_at}, or None."""
    document, _ = read_json(store, keys.account(username))
    if document is None:
        return None
    return {"username": username, "uid": document.get("uid"), "created_at": document.get("created_at")}


def user_index(store, uid):
    """The user's index entries ({id, title, updated_at, model}), newest first."""
    return Conversations(store, uid).index()


def conversation_keys(store, uid):
    """The keys of every conversation stored for uid."""
    return [key for key in store.keys(keys.conversations(uid)) if key.endswith(".json")]


def all_conversation_keys(store):
    """The keys of every user's conversations (users/{uid}/conversations/{cid}.json), sorted."""
    found = []
    for key in store.keys(keys.USERS):
        parts = key.split("/")
        if len(parts) == 4 and parts[2] == "conversations" and parts[3].endswith(".json"):
            found.append(key)
    return sorted(found)


def migrate_conversations(store):
    """Rewrite every user's stored conversations in the current format, each with a compare-and-swap (a reply
    saved meanwhile is read again, never overwritten). Idempotent: a document already in its current form is
    left alone. Return (rewritten, current, failed), failed a list of (key, reason)."""
    rewritten, current, failed = 0, 0, []
    for key in all_conversation_keys(store):
        changed = False

        def in_current_form(document):
            nonlocal changed
            if document is None:  # deleted since the listing: nothing to rewrite
                return None
            form = Conversation.from_dict(document).to_dict()
            changed = form != document
            return form if changed else None

        try:
            update_json(store, key, in_current_form)
        except (StorageError, ValueError, TypeError, KeyError, AttributeError) as error:
            # Unreadable JSON, a document that is no conversation, or a store that failed: said, and the rest go on.
            failed.append((key, f"{type(error).__name__}: {error}"))
            continue
        rewritten, current = rewritten + changed, current + (not changed)
    return rewritten, current, failed


def delete_user_data(store, uid):
    """Delete every conversation of uid, then revoke its share links, then its index; return how many went."""
    deleting = conversation_keys(store, uid)
    for key in deleting:
        store.delete(key)
    # After the conversations: a link being made meanwhile that this revoke misses then finds its
    # conversation gone and takes itself back (shares.Shares.create).
    Shares(store, uid).revoke_all()
    filestore.delete_all(store, uid)  # after the conversations that reference them
    # The index last: until then the sidebar lists what is still there, never what is gone.
    store.delete(keys.index(uid))
    return len(deleting)


def delete_account(store, username):
    """Delete an account and all its conversations; return the number deleted, or None when no such account."""
    found = account(store, username)
    if found is None:
        return None
    count = delete_user_data(store, found["uid"]) if is_valid_id(found["uid"]) else 0
    if is_valid_id(found["uid"]):
        store.delete(keys.provider_tokens(found["uid"]))  # a Hugging Face user's tokens
    identities.forget_all(store, read_json(store, keys.account(username))[0])
    # The account last: a half-done delete leaves an account to delete again, not an orphan guest.
    store.delete(keys.account(username))
    return count


def _last_active(store, uid):
    entries = user_index(store, uid)
    stamps = [entry["updated_at"] for entry in entries if entry.get("updated_at")]
    if not stamps:  # no index (a crash between writes): the conversations themselves
        for key in conversation_keys(store, uid):
            document, _ = read_json(store, key)
            if document and document.get("updated_at"):
                stamps.append(document["updated_at"])
    return (max(stamps, key=_parse_time), len(entries)) if stamps else (None, len(entries))


def guests(store):
    """Every guest (a users/{uid}/ no account points at) as {uid, last_active, conversations}."""
    owned = {found["uid"] for found in accounts(store)}
    result = []
    for uid in (uid for uid in _user_ids(store) if uid not in owned):
        last_active, count = _last_active(store, uid)
        result.append({"uid": uid, "last_active": last_active, "conversations": count})
    return result


def stale_guests(store, older_than, at=None):
    """The guests whose newest conversation was updated longer ago than older_than (a timedelta)."""
    cutoff = (at or datetime.now(timezone.utc)) - older_than
    return [
        guest for guest in guests(store) if guest["last_active"] is None or _parse_time(guest["last_active"]) < cutoff
    ]


def usage(store, days, at=None):
    """Per day of the last `days` (oldest first): {day, messages, replies, users}, from the stored messages.

    Only conversations updated within the window are read (the index says
    which), so the cost follows recent activity, not the whole history.
    """
    today = (at or datetime.now(timezone.utc)).date()
    first_day = today - timedelta(days=days - 1)
    counts = defaultdict(Counter)
    users = defaultdict(set)
    for uid in _user_ids(store):
        for entry in user_index(store, uid):
            updated = _parse_time(entry.get("updated_at"))
            if updated is None or updated.date() < first_day:
                continue
            document, _ = read_json(store, keys.conversation(uid, entry["id"]))
            for message in (document or {}).get("messages", []):
                created = _parse_time(message.get("created_at"))
                if created is None or not first_day <= created.date() <= today:
                    continue
                counts[created.date()]["messages" if message.get("role") == "user" else "replies"] += 1
                users[created.date()].add(uid)
    return [
        {
            "day": (first_day + timedelta(days=offset)).isoformat(),
            "messages": counts[first_day + timedelta(days=offset)]["messages"],
            "replies": counts[first_day + timedelta(days=offset)]["replies"],
            "users": len(users[first_day + timedelta(days=offset)]),
        }
        for offset in range(days)
    ]


def parse_age(text):
    """A timedelta from '30d', '12h' or '90m'; ValueError otherwise."""
    text = text.strip().lower()
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise ValueError(f"{text!r} is not an age like 30d, 12h or 90m")
    return timedelta(**{units[text[-1]]: int(text[:-1])})


def export_zip(store, uid, username=None):
    """A streamed zip of everything stored for uid: each conversation as JSON and each attached file, read as the
    zip reaches it."""
    archive = ZipStream(sized=False)
    entries = user_index(store, uid)
    about = {
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "username": username,
        "conversations": entries,
    }
    archive.add(json.dumps(about, ensure_ascii=False, indent=2).encode(), "index.json")

    def conversation_bytes(key):
        # A generator: the conversation is read only when the zip stream gets to it.
        found = store.read(key)
        if found is not None:
            # In the current format whatever its stored version: the whole tree, each message's parent.
            document = Conversation.from_dict(json.loads(found[0])).to_dict()
            yield json.dumps(document, ensure_ascii=False, indent=2).encode()

    for key in sorted(conversation_keys(store, uid)):
        archive.add(conversation_bytes(key), "conversations/" + key.rsplit("/", 1)[1])

    def file_bytes(key):
        found = store.read(key)
        if found is not None:
            yield found[0]

    # Each attached file as files/{id}/{name}: the conversations reference it by that id.
    for fid, name, key in filestore.stored(store, uid):
        archive.add(file_bytes(key), f"files/{fid}/{filestore.safe_file_name(name)}")  # a name kept before it was safe
    return archive
