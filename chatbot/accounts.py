"""Accounts: usernames, passwords, each sign-in's session, and a guest's conversations moving to an account.

Accounts are stored at keys.account(username) = {uid, password_hash, created_at, sessions}.
Each sign-in gets a random session id, recorded in the account's `sessions` (the newest
SESSIONS_KEPT): ending a session takes its id off the list, ending all of them empties it, and
an id that is not listed signs in nobody. AccountSessions caches the list per account and
process; with REDIS_URL, a change made through one process reaches the others at once
(SessionChanges). Nothing here knows about HTTP: every function is given the Store.
"""

import functools
import logging
import re
import secrets
import threading
import time

import redis
from flask_login import UserMixin
from werkzeug.security import check_password_hash, generate_password_hash

from . import keys
from .conversations import is_valid_id, new_id, now
from .storage import read_json, update_json

USERNAME_PATTERN = re.compile(r"[a-z0-9_.-]{3,32}")
SESSION_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}")
MIN_PASSWORD = 8
# Hashing cost grows with the input: a cap keeps a megabyte "password" from costing the server.
MAX_PASSWORD = 128
# Sign-ins an account keeps: each adds its id to the account document, so the oldest go past this many.
SESSIONS_KEPT = 30


def valid_username(username):
    """True when username has the shape usernames are allowed to have."""
    return bool(USERNAME_PATTERN.fullmatch(username or ""))


def new_session_id():
    """A random id for one sign-in (128 bits)."""
    return secrets.token_urlsafe(16)


def parse_session(value):
    """(uid, username, session id) from Account.get_id()'s value, or None when it does not have their shapes."""
    uid, username, session_id = (value.split(":") + ["", ""])[:3]
    if not (is_valid_id(uid) and valid_username(username) and SESSION_ID_PATTERN.fullmatch(session_id)):
        return None
    return uid, username, session_id


def validate(username, password):
    """What is wrong with this username and password for a new account, or None."""
    if not valid_username(username):
        return "Usernames are 3 to 32 characters: lowercase letters, digits, '.', '_' or '-'."
    if len(password) < MIN_PASSWORD:
        return f"Passwords have at least {MIN_PASSWORD} characters."
    if len(password) > MAX_PASSWORD:
        return f"Passwords have at most {MAX_PASSWORD} characters."
    return None


class Account(UserMixin):
    """A signed-in user. The session carries uid, username and session id: no storage read per request."""

    def __init__(self, uid, username, session_id=None):
        self.uid = uid
        self.username = username
        self.session_id = session_id

    def get_id(self):
        """Flask-Login's session (and remember-me cookie) value."""
        return f"{self.uid}:{self.username}:{self.session_id}"


def create_account(store, username, password, uid, session_id=None):
    """Create an account owning uid, signed in as session_id if given; return False when the username is taken."""
    created = False

    def create(existing):
        nonlocal created
        if existing is not None:
            created = False
            return None
        created = True
        return {
            "uid": uid,
            "password_hash": generate_password_hash(password),
            "created_at": now(),
            "sessions": [session_id] if session_id else [],
        }

    update_json(store, keys.account(username), create)
    return created


@functools.cache
def _dummy_hash():
    # Checked when there is no such account, so that a wrong username costs as long as a wrong password.
    return generate_password_hash(new_id())


def check_account(store, username, password):
    """Return the Account when the password matches, else None; as slow whether or not the username exists.

    The Account has no session yet: AccountSessions.open gives it one.
    """
    account = None
    if valid_username(username) and len(password) <= MAX_PASSWORD:
        account, _ = read_json(store, keys.account(username))
    # An account made by a provider's sign-in has no password: nothing matches it.
    password_hash = (account or {}).get("password_hash") or _dummy_hash()
    matches = check_password_hash(password_hash, password[:MAX_PASSWORD])
    if account is None or not account.get("password_hash") or not matches:
        return None
    return Account(account["uid"], username)


log = logging.getLogger(__name__)


class SessionChanges:
    """Tells every process, through Redis, that an account's sessions changed: a small key per account
    (chatbot:sessions:{username}) set to a new random value at each change, read once per signed-in request.

    A process keeps the value it saw with what it read of the account, and reads the account again when
    the value differs. The key lasts longer than any process keeps what it read (`seconds`), so once it is
    gone, so is every copy read before the change it marked.
    """

    def __init__(self, pool, seconds):
        import redis

        self._redis = redis.Redis(connection_pool=pool)  # the process's shared pool (chatbot/redis_client.py)
        self._expiry = 2 * seconds + 10

    @staticmethod
    def _key(username):
        return f"chatbot:sessions:{username}"

    def seen(self, username):
        """The account's current mark (None when nothing changed lately); a mark never seen before when
        Redis cannot be reached, so that the account is read from storage."""
        try:
            return self._redis.get(self._key(username))
        except redis.RedisError:
            return object()

    def changed(self, username):
        """The account's sessions changed in storage (call after the write): every process reads them again."""
        try:
            self._redis.set(self._key(username), secrets.token_hex(8), ex=self._expiry)
        except redis.RedisError as error:
            log.warning("sessions of %s changed, but Redis was not told: %s", username, error)


class AccountSessions:
    """Each account's sign-ins: recorded in its document, with its uid and session ids cached per process.

    The cache is re-read from storage at most every `seconds`, and at once when `changes` (SessionChanges:
    several processes share a Redis) says that one of them changed the account. The uid is part of it: a
    name deleted and then taken by someone else is another account. An id the cached list lacks is looked
    up again at once (it may have signed in on another process a moment ago); a browser whose id is
    refused forgets it (identity._signed_out), so that costs one read, once.
    """

    def __init__(self, seconds, changes=None):
        self.seconds = seconds
        self.changes = changes
        self._known = {}  # username -> ((uid, frozenset of session ids) or None, read at, mark seen before)
        self._lock = threading.Lock()

    def is_live(self, store, username, uid, session_id):
        """True when the account username is uid and session_id is one of its sessions."""
        mark = self.changes.seen(username) if self.changes else None  # before the read: a later change shows
        with self._lock:
            stamp, read_at, seen = self._known.get(username, (None, -float("inf"), None))
        stale = time.monotonic() - read_at >= self.seconds or mark != seen
        if stale or not _holds(stamp, uid, session_id):
            account, _ = read_json(store, keys.account(username))
            stamp = self._keep(username, account, mark)
        return _holds(stamp, uid, session_id)

    def _keep(self, username, account, mark):
        stamp = None if account is None else (account["uid"], frozenset(account.get("sessions", ())))
        with self._lock:
            self._known[username] = (stamp, time.monotonic(), mark)
        return stamp

    def remember(self, username, account):
        """This process wrote the account document (None: deleted it): use it at once, and tell the other
        processes to read it again; return its stamp."""
        if self.changes is None:
            return self._keep(username, account, None)  # one process: what it wrote is the truth
        self.changes.changed(username)
        # Another process may have written between this write and the mark: read again at the next request.
        return self._keep(username, account, object())

    def open(self, store, account):
        """Record a new sign-in of account (the newest SESSIONS_KEPT are kept); return it with its session id.

        None when the account was deleted meanwhile.
        """
        session_id = new_session_id()
        stored = self._change(store, account.username, account.uid, lambda ids: (ids + [session_id])[-SESSIONS_KEPT:])
        return Account(account.uid, account.username, session_id) if stored is not None else None

    def end(self, store, account):
        """Log this sign-in out: its session and remember-me cookie, and any copy of them, stop working."""
        self._change(
            store, account.username, account.uid, lambda ids: [other for other in ids if other != account.session_id]
        )

    def end_all(self, store, account):
        """Log the account out everywhere: every session and remember-me cookie issued so far stops working."""
        self._change(store, account.username, account.uid, lambda ids: [])

    def _change(self, store, username, uid, change):
        """Apply change(list of session ids) -> list to account uid's sessions; return the stored account or None."""

        def apply(account):
            if account is None or account["uid"] != uid:
                return None  # deleted meanwhile (its name maybe taken again): nothing of ours to change
            kept = {key: value for key, value in account.items() if key != "session_version"}  # the former scheme
            return {**kept, "sessions": change(list(account.get("sessions", [])))}

        account = update_json(store, keys.account(username), apply)
        self.remember(username, account)
        return account if account is not None and account["uid"] == uid else None


def _holds(stamp, uid, session_id):
    return stamp is not None and stamp[0] == uid and session_id in stamp[1]


def move_conversations(store, from_uid, to_uid):
    """Copy every stored object of user from_uid to to_uid, then delete the originals."""
    prefix, target = keys.user(from_uid), keys.user(to_uid)
    moving = list(store.keys(prefix))
    for key in moving:
        found = store.read(key)
        if found is not None:
            store.write(target + key[len(prefix) :], found[0], create=True)
    for key in moving:
        store.delete(key)
