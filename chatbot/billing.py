"""Who pays for a reply (INFERENCE_BILLING): the operator's HF_TOKEN, or the signed-in Hugging Face user.

- operator (the default): the operator pays for every reply.
- user: a user signed in with Hugging Face pays for their replies and titles with their own access token;
  anyone else is invited to sign in with Hugging Face in place of the composer, and is refused a reply.
- user-first: Hugging Face users pay for themselves, everyone else through the operator.

It is decided once per request (payer(), kept in flask.g) before anything is stored, so that a refusal
keeps the typed message: the token budget asks it, then the reply's job gets its model client from it.
The daily token budget counts only what the operator pays for; rate limits and reply slots hold for all.
The local model is never billed: it is the operator's machine.
"""

from dataclasses import dataclass

from flask import current_app, g, make_response, render_template, request, url_for
from flask_login import current_user
from werkzeug.exceptions import Unauthorized

from . import tokens
from .htmx import is_htmx, retarget
from .llm import get_llm
from .storage import get_store


@dataclass(frozen=True)
class Payer:
    """Who pays for this request's reply: the user (with their access token, billing bill_to) or the operator."""

    user_pays: bool
    token: str | None = None
    bill_to: str | None = None


OPERATOR = Payer(False)


class SignInToChat(Unauthorized):
    """The user must sign in with Hugging Face (again) before a reply can be made for them."""

    def __init__(self, message):
        super().__init__(message)


def _mode():
    config = current_app.config
    if config["LLM_BACKEND"] != "huggingface" or not config["HF_OAUTH_CLIENT_ID"]:
        return "operator"
    return config["INFERENCE_BILLING"]


def _stored_tokens():
    if not current_user.is_authenticated:
        return None
    return tokens.stored(get_store(), current_user.uid)


def _decide():
    mode = _mode()
    if mode == "operator":
        return OPERATOR
    stored = _stored_tokens()
    if stored is None:
        if mode == "user":
            raise SignInToChat("Your message was not sent: sign in with Hugging Face to chat, then send it again.")
        return OPERATOR
    from .oidc import hugging_face_refresher

    try:
        token = tokens.fresh_access_token(get_store(), current_user.uid, hugging_face_refresher())
    except tokens.SignInAgain:
        if mode == "user-first":
            return OPERATOR
        raise SignInToChat(
            "Your message was not sent: your Hugging Face sign-in has expired. Sign in with Hugging Face again, "
            "then send it again."
        ) from None
    return Payer(True, token, stored.get("bill_to"))


def payer():
    """Who pays for this request's reply (decided on first call, then the same answer)."""
    if "payer" not in g:
        g.payer = _decide()
    return g.payer


def reply_model():
    """The model client a reply of this request is made with: the operator's, or one the user pays with."""
    llm, paid = get_llm(), payer()
    return llm.for_user(paid.token, paid.bill_to) if paid.user_pays else llm


def must_sign_in():
    """True when the composer gives way to an invitation to sign in with Hugging Face (user mode, not signed in)."""
    if "must_sign_in" not in g:
        g.must_sign_in = _mode() == "user" and _stored_tokens() is None
    return g.must_sign_in


def _sign_in_url():
    return url_for("oidc.start", provider="huggingface", next=_path_of_referrer())


def _path_of_referrer():
    cid = (request.view_args or {}).get("cid")
    return url_for("chat.conversation", cid=cid) if cid else url_for("chat.index")


def _sign_in_to_chat(error):
    """401: in the composer for htmx (the typed text stays), else a page that offers the post again."""
    message, link = error.description, _sign_in_url()
    if is_htmx():
        body = render_template("regions/composer_error.html", error=message, sign_in_url=link)
        return retarget(make_response(body, 401), "#composer-error")
    page = render_template(
        "limited.html",
        message=message,
        code=401,
        heading="Sign in to chat",
        sign_in_url=link,
        resend={"action": request.path, "label": "Send again"},
        back=_path_of_referrer(),
    )
    return make_response(page, 401)


def init_app(app):
    """Answer SignInToChat; make must_sign_in() available to templates."""
    app.register_error_handler(SignInToChat, _sign_in_to_chat)
    app.jinja_env.globals["must_sign_in"] = must_sign_in
