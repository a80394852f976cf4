"""Blueprint "oidc": sign in with Hugging Face, or another OpenID Connect provider, and connect or disconnect one.

Authlib's Flask client does the protocol: the provider's configuration is discovered from the issuer's
.well-known; the authorization code flow carries PKCE (S256), a state and a nonce, kept in the signed
session; the ID token's signature, issuer, audience (our client id) and nonce are checked. It is a
redirect flow: no JavaScript. The callback's address is OAUTH_REDIRECT_BASE's when set, else this
request's as the trusted proxies report it (security.py): never a header the client alone controls.
Hugging Face's tokens are kept (tokens.py) so that its users can pay for their own replies.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from authlib.oauth2 import OAuth2Error
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from joserfc.errors import JoseError

from . import identities, limits, tokens
from .accounts import move_conversations, new_session_id
from .conversations import is_valid_id, new_id
from .headers import content_security_policy
from .identity import account_sessions, safe_next, start_session
from .storage import get_store

bp = Blueprint("oidc", __name__, url_prefix="/auth/oidc")

HUGGING_FACE = "huggingface"
OTHER = "oidc"
# What the provider's answer can fail with: its refusal, a state or ID token that does not check, no answer.
# What a provider (or a forged callback) can make the flow raise: Authlib's client and OAuth 2 errors (a callback
# without its code, say), the ID token's checks, the network, a malformed answer.
SIGN_IN_FAILURES = (OAuthError, OAuth2Error, JoseError, requests.RequestException, KeyError, ValueError)


@dataclass(frozen=True)
class Provider:
    """One configured provider: its name in URLs, its button's label, its issuer, and whether its tokens are kept."""

    name: str
    label: str
    issuer: str
    keeps_tokens: bool


def _configured(config):
    providers = []
    if config["HF_OAUTH_CLIENT_ID"]:
        providers.append(Provider(HUGGING_FACE, "Sign in with Hugging Face", config["HF_OAUTH_ISSUER"], True))
    if config["OIDC_ISSUER"] and config["OIDC_CLIENT_ID"]:
        providers.append(Provider(OTHER, config["OIDC_LABEL"], config["OIDC_ISSUER"], False))
    return providers


def init_app(app):
    """Register the configured providers with Authlib, and the blueprint."""
    oauth = OAuth(app)
    config = app.config
    settings = {
        HUGGING_FACE: ("HF_OAUTH_CLIENT_ID", "HF_OAUTH_CLIENT_SECRET", "HF_OAUTH_SCOPES"),
        OTHER: ("OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET", "OIDC_SCOPES"),
    }
    for provider in _configured(config):
        client_id, secret, scopes = settings[provider.name]
        oauth.register(
            provider.name,
            client_id=config[client_id],
            client_secret=config[secret],
            server_metadata_url=f"{provider.issuer}/.well-known/openid-configuration",
            client_kwargs={"scope": config[scopes], "code_challenge_method": "S256"},
        )
    app.extensions["oidc"] = {"oauth": oauth, "providers": {p.name: p for p in _configured(config)}}
    # "Connect" is a form whose answer redirects to the provider: the page's form-action must allow it.
    app.extensions["csp"] = content_security_policy(sorted({_origin(p.issuer) for p in _configured(config)}))
    app.jinja_env.globals["sign_in_providers"] = providers
    app.register_blueprint(bp)


def _origin(url):
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def providers():
    """The configured providers, Hugging Face first."""
    return list(current_app.extensions["oidc"]["providers"].values())


def _provider_named(name):
    """The configured provider called name (404 for another name)."""
    found = current_app.extensions["oidc"]["providers"].get(name)
    if found is None:
        abort(404)
    return found


def client(name):
    """Authlib's client of the provider called name."""
    return getattr(current_app.extensions["oidc"]["oauth"], name)


def hugging_face_refresher():
    """A refresh(refresh_token) for tokens.fresh_access_token, over Hugging Face's token endpoint."""
    hf = client(HUGGING_FACE)
    return tokens.refresher(hf.client_id, hf.client_secret, hf.load_server_metadata()["token_endpoint"])


def _redirect_uri(name):
    base = current_app.config["OAUTH_REDIRECT_BASE"]
    path = url_for("oidc.callback", provider=name)
    return f"{base}{path}" if base else url_for("oidc.callback", provider=name, _external=True)


def _go_to_provider(name, intent):
    session["oidc_intent"] = intent
    # One pending sign-in a provider: Authlib keeps each in the cookie session for an hour, so sign-ins
    # started and abandoned (by a user, or by another site sending the browser here) would grow the cookie
    # past what a browser keeps, and every later sign-in would fail. A newer start replaces an older one.
    for key in [key for key in session if key.startswith(f"_state_{name}_")]:
        session.pop(key)
    try:
        return client(name).authorize_redirect(_redirect_uri(name))
    except SIGN_IN_FAILURES as error:  # the provider's configuration could not be read
        current_app.logger.warning("sign-in with %s cannot start: %s", name, type(error).__name__)
        return _failed("The sign-in service cannot be reached right now. Please try again in a moment.", 503)


@bp.get("/<provider>/start")
@limits.limit_sign_ins
def start(provider):
    """Send the browser to the provider's sign-in page; it comes back to the callback."""
    found = _provider_named(provider)
    session["oidc_next"] = safe_next(request.args.get("next"))
    return _go_to_provider(found.name, {"action": "sign-in"})


@bp.post("/<provider>/connect")
@login_required
@limits.limit_sign_ins
def connect(provider):
    """Connect a provider to the signed-in account (the form carries the CSRF token)."""
    found = _provider_named(provider)
    return _go_to_provider(found.name, {"action": "connect", "uid": current_user.uid})


@bp.post("/<provider>/disconnect")
@login_required
def disconnect(provider):
    """Disconnect a provider from the account, unless it is its last way in; its tokens are deleted."""
    found = _provider_named(provider)
    store = get_store()
    if identities.disconnect(store, current_user, found.name):
        if found.keeps_tokens:
            tokens.delete(store, current_user.uid)
        flash(f"{found.label.removeprefix('Sign in with ')} is disconnected.")
    else:
        flash("That is your only way to sign in, so it stays connected.")
    return redirect(url_for("account.page"))


def _failed(message, status=400):
    return render_template("error.html", code=status, status=status, message=message), status


@bp.get("/<provider>/callback")
@limits.limit_sign_ins
def callback(provider):
    """The provider sends the browser back here: check everything, then sign in (or connect)."""
    found = _provider_named(provider)
    intent = session.pop("oidc_intent", None) or {}
    try:
        token = client(found.name).authorize_access_token()
        claims = token["userinfo"]  # present only when an ID token came and checked out
        subject = claims["sub"]
    except SIGN_IN_FAILURES as error:
        current_app.logger.warning("sign-in with %s refused: %s", found.name, type(error).__name__)
        return _failed("The sign-in did not complete (it was refused, or is stale). Please start it again.")
    if intent.get("action") == "connect":
        return _connect(found, token, claims, subject, intent.get("uid"))
    return _sign_in(found, token, claims, subject)


def _connect(found, token, claims, subject, uid):
    if not current_user.is_authenticated or current_user.uid != uid:
        return _failed("You were signed out meanwhile. Log in, then connect again.")
    store = get_store()
    try:
        identities.connect(store, current_user, found.name, found.issuer, subject, claims)
    except identities.AlreadyConnected:
        flash("That account is connected to another account here already: it cannot be connected twice.")
        return redirect(url_for("account.page"))
    if found.keeps_tokens:
        tokens.save(store, current_user.uid, found.issuer, token, tokens.paying_organisations(claims))
    flash(f"{identities.display_name(claims)} is connected: you may sign in with it.")
    return redirect(url_for("account.page"))


def _sign_in(found, token, claims, subject):
    store = get_store()
    target = session.get("oidc_next") or url_for("chat.index")
    account = identities.find(store, found.issuer, subject)
    if account is not None:
        account = account_sessions().open(store, account)
    if account is None:
        guest_uid = None if current_user.is_authenticated else session.get("guest_uid")
        uid, session_id = new_id(), new_session_id()
        account = identities.create_account(store, found.name, found.issuer, subject, claims, uid, session_id)
        account_sessions().remember(account.username, {"uid": account.uid, "sessions": [account.session_id]})
        if is_valid_id(guest_uid):
            move_conversations(store, guest_uid, account.uid)  # a guest keeps their conversations, as at sign-up
    if found.keeps_tokens:
        tokens.save(store, account.uid, found.issuer, token, tokens.paying_organisations(claims))
    start_session(account)
    return redirect(safe_next(target))
