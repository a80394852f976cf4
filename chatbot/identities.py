"""Identities: a provider's user (issuer and subject) and the one account it signs in to.

The record at keys.identity(issuer, subject) names the account {username, uid}; the account lists its
identities [{provider, issuer, sub, name}]. The record is created only when absent, so an identity can
never belong to two accounts. An account made by a sign-in has no password (password_hash None) and a
username taken from the profile's claims. Nothing here knows about HTTP: every function is given the Store.
"""

import re
import secrets

from . import keys
from .accounts import Account, valid_username
from .conversations import now
from .storage import read_json, update_json


class AlreadyConnected(Exception):
    """The identity belongs to another account."""


def display_name(claims):
    """The name to show for a provider's user, from the profile claims."""
    for claim in ("name", "preferred_username", "nickname", "email"):
        value = claims.get(claim)
        if isinstance(value, str) and value.strip():
            return value.strip()[:100]
    return "your account"


def _username_base(claims):
    for claim in ("preferred_username", "nickname", "name", "email"):
        value = claims.get(claim)
        if isinstance(value, str):
            base = re.sub(r"[^a-z0-9_.-]+", "-", value.split("@")[0].lower()).strip("-.")[:26]
            if len(base) >= 3:
                return base
    return "user"


def find(store, issuer, subject):
    """The Account (without a session) that the identity signs in to, or None."""
    record, _ = read_json(store, keys.identity(issuer, subject))
    if record is None:
        return None
    account, _ = read_json(store, keys.account(record["username"]))
    if account is None or account["uid"] != record["uid"]:
        return None  # the account was deleted (its name maybe taken again): the identity is free
    if not any(entry["issuer"] == issuer and entry["sub"] == subject for entry in account.get("identities", [])):
        return None
    return Account(record["uid"], record["username"])


def _claim(store, issuer, subject, username, uid):
    """Make the identity's record name account uid; raise AlreadyConnected when it names another live one."""

    def change(record):
        if record is not None and record["uid"] != uid and find(store, issuer, subject) is not None:
            raise AlreadyConnected(issuer)
        return {"username": username, "uid": uid}

    update_json(store, keys.identity(issuer, subject), change)


def _entry(provider, issuer, subject, claims):
    return {"provider": provider, "issuer": issuer, "sub": subject, "name": display_name(claims)}


def create_account(store, provider, issuer, subject, claims, uid, session_id):
    """A new account for the identity, signed in as session_id; return its Account (with the session)."""
    base = _username_base(claims)
    document = {
        "uid": uid,
        "password_hash": None,
        "created_at": now(),
        "sessions": [session_id],
        "identities": [_entry(provider, issuer, subject, claims)],
    }
    for attempt in range(20):
        username = base if attempt == 0 else f"{base}-{secrets.randbelow(10**4):04d}"
        if not valid_username(username):
            continue
        created = update_json(store, keys.account(username), lambda found: None if found else document)
        if created is document:
            _claim(store, issuer, subject, username, uid)
            return Account(uid, username, session_id)
    raise RuntimeError("no free username for a new account")


def connect(store, account, provider, issuer, subject, claims):
    """Connect the identity to account (raise AlreadyConnected when another account has it)."""
    _claim(store, issuer, subject, account.username, account.uid)

    def add(document):
        if document is None or document["uid"] != account.uid:
            return None
        kept = [entry for entry in document.get("identities", []) if entry["provider"] != provider]
        return {**document, "identities": kept + [_entry(provider, issuer, subject, claims)]}

    update_json(store, keys.account(account.username), add)


def connected(store, username):
    """The account's identities [{provider, issuer, sub, name}] and whether it has a password."""
    document, _ = read_json(store, keys.account(username))
    if document is None:
        return [], False
    return document.get("identities", []), bool(document.get("password_hash"))


def disconnect(store, account, provider):
    """Disconnect the account's identity of provider; False when it is its last way in (nothing changes)."""
    removed = []

    def remove(document):
        if document is None or document["uid"] != account.uid:
            return None
        identities = document.get("identities", [])
        kept = [entry for entry in identities if entry["provider"] != provider]
        if not kept and not document.get("password_hash"):
            return None  # its last way in
        removed[:] = [entry for entry in identities if entry["provider"] == provider]
        return {**document, "identities": kept}

    update_json(store, keys.account(account.username), remove)
    for entry in removed:
        store.delete(keys.identity(entry["issuer"], entry["sub"]))
    return bool(removed)


def forget_all(store, document):
    """Delete the identity records of an account document (the account is being deleted)."""
    for entry in (document or {}).get("identities", []):
        store.delete(keys.identity(entry["issuer"], entry["sub"]))
