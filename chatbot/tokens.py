"""A Hugging Face user's access and refresh tokens: stored server-side, encrypted, refreshed before they expire.

They are kept at keys.provider_tokens(uid) as {issuer, sealed, bill_to, orgs}: `sealed` is a Fernet token
(AES with an HMAC) of {access_token, refresh_token, expires_at}, under TOKEN_ENCRYPTION_KEY or a key
derived from SECRET_KEY with HKDF. They never reach the browser and are never logged (nothing here
logs a token, and a failed refresh is logged without one).
"""

import base64
import json
import logging
import time

from authlib.integrations.requests_client import OAuth2Session
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

from . import keys
from .storage import read_json, update_json

logger = logging.getLogger(__name__)

# An access token this close to its expiry is refreshed before a reply uses it (a reply takes up to a minute).
REFRESH_MARGIN_SECONDS = 120


class SignInAgain(Exception):
    """The stored tokens are gone, revoked or expired, and cannot be refreshed: the user must sign in again."""


def _fernet(config):
    key = config.get("TOKEN_ENCRYPTION_KEY")
    if key:
        return Fernet(key)
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"chatbot provider tokens").derive(
        config["SECRET_KEY"].encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(config, tokens):
    """Encrypt tokens (a dict) for storage."""
    return _fernet(config).encrypt(json.dumps(tokens).encode()).decode()


def unseal(config, sealed):
    """The tokens sealed held, or None when they cannot be read (another key, or tampered with)."""
    try:
        return json.loads(_fernet(config).decrypt(sealed.encode()))
    except (InvalidToken, ValueError):
        return None


def _from_response(token):
    expires_at = token.get("expires_at") or (time.time() + int(token.get("expires_in") or 3600))
    return {
        "access_token": token["access_token"],
        "refresh_token": token.get("refresh_token"),
        "expires_at": float(expires_at),
    }


def paying_organisations(claims):
    """The organisations the provider says this user can bill (Hugging Face's `orgs` claim, with read-billing)."""
    orgs = claims.get("orgs") if isinstance(claims.get("orgs"), list) else []
    return sorted(
        org["preferred_username"]
        for org in orgs
        if isinstance(org, dict) and org.get("canPay") and isinstance(org.get("preferred_username"), str)
    )


def save(store, uid, issuer, token, organisations=None, replacing=None):
    """Store the tokens of a token response for user uid; the organisation to bill is kept if it still can pay.

    replacing: the sealed tokens a refresh started from. The refreshed ones are stored only over those, so a
    refresh that returns after a disconnect, "Log out everywhere" or the account's deletion (which delete the
    record) or after another refresh brings nothing back. Returns False when nothing was stored.
    """
    sealed, written = seal(current_app.config, _from_response(token)), []

    def change(document):
        written.clear()
        if replacing is not None and (document is None or document.get("sealed") != replacing):
            return None
        written.append(True)
        document = document or {}
        orgs = document.get("orgs", []) if organisations is None else organisations
        bill_to = document.get("bill_to") if document.get("bill_to") in orgs else None
        return {"issuer": issuer, "sealed": sealed, "bill_to": bill_to, "orgs": orgs}

    update_json(store, keys.provider_tokens(uid), change)
    return bool(written)


def stored(store, uid):
    """User uid's stored record {issuer, sealed, bill_to, orgs}, or None."""
    document, _ = read_json(store, keys.provider_tokens(uid))
    return document


def set_bill_to(store, uid, organisation):
    """Bill user uid's replies to organisation (None: to themselves); False when it is not one they can bill."""

    def change(found):
        if not found or (organisation is not None and organisation not in found.get("orgs", [])):
            return None
        return {**found, "bill_to": organisation}

    document = update_json(store, keys.provider_tokens(uid), change)
    return document is not None and document.get("bill_to") == organisation


def delete(store, uid):
    """Forget user uid's tokens (log out everywhere, disconnect, account deleted)."""
    store.delete(keys.provider_tokens(uid))


def fresh_access_token(store, uid, refresh):
    """User uid's access token, refreshed first when it expires soon; raise SignInAgain when it cannot be.

    refresh(refresh_token) -> token response, made by the caller (the provider's client).
    """
    document = stored(store, uid)
    if document is None:
        raise SignInAgain("no tokens stored")
    tokens = unseal(current_app.config, document["sealed"])
    if tokens is None:
        raise SignInAgain("stored tokens cannot be read")
    if tokens["expires_at"] - time.time() > REFRESH_MARGIN_SECONDS:
        return tokens["access_token"]
    if not tokens.get("refresh_token"):
        raise SignInAgain("expired, with no refresh token")
    try:
        renewed = refresh(tokens["refresh_token"])
    except Exception as error:  # the provider said no, or cannot be reached: never logged with the token
        # Another request may have refreshed it a moment ago (the old refresh token is then revoked).
        again = unseal(current_app.config, (stored(store, uid) or {}).get("sealed", ""))
        if again and again["access_token"] != tokens["access_token"] and again["expires_at"] > time.time():
            return again["access_token"]
        logger.warning("refreshing a user's Hugging Face token failed: %s", type(error).__name__)
        raise SignInAgain("refresh failed") from None
    if not save(store, uid, document["issuer"], renewed, replacing=document["sealed"]):
        # Disconnected, logged out everywhere or deleted meanwhile (or refreshed by another request):
        # the tokens are no longer this user's to spend.
        raise SignInAgain("the stored tokens changed while they were refreshed")
    return renewed["access_token"]


def refresher(client_id, client_secret, token_endpoint):
    """A refresh(refresh_token) -> token response for fresh_access_token, over the provider's token endpoint."""

    def refresh(refresh_token):
        with OAuth2Session(client_id, client_secret) as session:
            return session.refresh_token(token_endpoint, refresh_token=refresh_token)

    return refresh
