"""The storage layout: the key of everything the app stores, the same in every backend.

    accounts/{username}.json              an account {uid, password_hash, created_at, sessions}
    users/{uid}/index.json                the sidebar's list [{id, title, updated_at, model}], newest first
    users/{uid}/conversations/{cid}.json  one whole conversation
    users/{uid}/files/{fid}               an attached file's bytes (re-encoded when an image)
    users/{uid}/files/{fid}.json          what the file is {id, name, type, size, kind, text}
    users/{uid}/shares.json               the user's share links [{id, cid, title, created_at}], newest first
    shares/{sid}.json                     a shared snapshot {id, uid, cid, created_at, title, model, messages}
    shares/{sid}/files/{fid}(.json)       a copy of a file the snapshot shows (as users/{uid}/files/ holds it)
    identities/{issuer}/{subject}.json    a provider's user -> {username, uid}: one account per identity
                                          (issuer and subject as hashes: they are the provider's strings)
    tokens/{uid}.json                     a Hugging Face user's tokens, encrypted {issuer, sealed, bill_to}

Callers check an id's shape (is_valid_id) before making a key of it, so that no id is ever a path.
"""

import hashlib
import re
import secrets

ACCOUNTS = "accounts/"
USERS = "users/"
SHARES = "shares/"
IDENTITIES = "identities/"
TOKENS = "tokens/"
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{16}")


def new_id():
    """Return a random, URL-safe id of 16 characters: a user's, a conversation's, a message's or a file's."""
    return secrets.token_urlsafe(12)


def is_valid_id(value):
    """True when value has the shape of an id this app generates (and so is safe in a key)."""
    return bool(ID_PATTERN.fullmatch(value or ""))  # fullmatch: "$" would let a trailing newline through


def account(username):
    """The key of the account named username."""
    return f"{ACCOUNTS}{username}.json"


def username_of(key):
    """The username an account's key names, or None for a key that is not an account's."""
    if not key.startswith(ACCOUNTS) or not key.endswith(".json"):
        return None
    return key[len(ACCOUNTS) : -len(".json")]


def user(uid):
    """The prefix of everything stored for user uid (conversations, their index, share links)."""
    return f"{USERS}{uid}/"


def uid_of(key):
    """The user id a key under users/{uid}/ belongs to, or None for another key."""
    parts = key.split("/")
    return parts[1] if len(parts) >= 3 and f"{parts[0]}/" == USERS else None


def index(uid):
    """The key of user uid's conversation list (the sidebar's)."""
    return f"{user(uid)}index.json"


def conversations(uid):
    """The prefix of user uid's conversations."""
    return f"{user(uid)}conversations/"


def conversation(uid, cid):
    """The key of user uid's conversation cid."""
    return f"{conversations(uid)}{cid}.json"


def files(uid):
    """The prefix of user uid's attached files."""
    return f"{user(uid)}files/"


def file(uid, fid):
    """The key of the bytes of user uid's file fid."""
    return f"{files(uid)}{fid}"


def file_about(uid, fid):
    """The key of what user uid's file fid is (name, type, size, text)."""
    return f"{files(uid)}{fid}.json"


def share_list(uid):
    """The key of user uid's list of share links."""
    return f"{user(uid)}shares.json"


def share(sid):
    """The key of the snapshot shared as sid."""
    return f"{SHARES}{sid}.json"


def share_files(sid):
    """The prefix of the copies of the files that snapshot sid shows."""
    return f"{SHARES}{sid}/files/"


def share_file(sid, fid):
    """The key of the bytes of file fid of snapshot sid."""
    return f"{share_files(sid)}{fid}"


def share_file_about(sid, fid):
    """The key of what file fid of snapshot sid is."""
    return f"{share_files(sid)}{fid}.json"


def _digest(text, length):
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def identity(issuer, subject):
    """The key of the record naming the account that the provider issuer's user subject signs in to."""
    return f"{IDENTITIES}{_digest(issuer, 16)}/{_digest(subject, 40)}.json"


def provider_tokens(uid):
    """The key of user uid's Hugging Face tokens (encrypted)."""
    return f"{TOKENS}{uid}.json"
