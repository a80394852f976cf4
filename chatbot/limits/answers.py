"""The refusals and their answers: 429 with Retry-After (503 when the process itself is full), 403 at a cap.

To an htmx post from the chat the answer goes in the composer (the typed text stays); otherwise it is a
fragment, or a page that offers a refused chat post again without JavaScript.
"""

import math
import time

from flask import make_response, render_template, request, url_for
from werkzeug.exceptions import TooManyRequests

from ..conversations import CapReached
from ..htmx import is_htmx, retarget
from .rates import limiter

# Endpoints whose htmx POSTs come from the chat, where the composer shows the error (its text stays typed).
COMPOSER_ENDPOINTS = {"chat.start", "chat.send", "chat.regenerate", "chat.edit"}
# Without JavaScript a refused chat POST would lose what it carried: its page offers the post again (these words).
RESEND_LABELS = {
    "chat.start": "Send again",
    "chat.send": "Send again",
    "chat.edit": "Send again",
    "chat.regenerate": "Try again",
}


class Refused(TooManyRequests):
    """A limit of ours (replies at once, log-in back-off, ...) was reached; retry_after is in seconds."""

    def __init__(self, message, retry_after):
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


class Busy(Refused):
    """The process is at its capacity (open streams), which is no limit of the user's: 503, with Retry-After."""

    code = 503
    name = "Service Unavailable"


def _in_words(seconds):
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} minutes"
    return f"{round(seconds / 3600)} hours"


def _message(error, retry_after):
    if isinstance(error, Refused):
        return error.description  # it says what to do itself
    when = f"Please retry in {_in_words(retry_after)}."
    scope = getattr(getattr(error, "limit", None), "scope", None)
    scope = scope if isinstance(scope, str) else ""
    if scope.startswith("messages"):
        return f"Your message was not sent: that is more messages than this chatbot allows for now. {when}"
    if scope.startswith("searches"):
        return f"Too many searches for now. {when}"
    if scope.startswith("signups"):
        return f"Too many accounts were created from your network. {when}"
    return f"Too many requests for now. {when}"


def _retry_after(error):
    if isinstance(error, Refused):
        return error.retry_after
    current = limiter.current_limit
    reset_at = current.reset_at if current is not None else time.time() + 60
    return max(1, math.ceil(reset_at - time.time()))


def _resend(action=None, label=None):
    """The form a refused chat POST is offered again in, without JavaScript (None for other requests).

    It posts to action (the same URL unless given), holding the typed text and model when the post had them.
    """
    if request.method != "POST" or request.endpoint not in RESEND_LABELS:
        return None
    return {"action": action or request.path, "label": label or RESEND_LABELS[request.endpoint]}


def _limited_page(message, code, resend, heading=None):
    """The whole page of a refusal; "Back" goes to the conversation the request was about, if any."""
    cid = (request.view_args or {}).get("cid")
    back = url_for("chat.conversation", cid=cid) if cid else url_for("chat.index")
    return render_template("limited.html", message=message, code=code, resend=resend, heading=heading, back=back)


def _too_many(error):
    """429 (503 when busy): in the composer for the chat's htmx posts (the text stays), else a fragment or a page."""
    retry_after, code = _retry_after(error), error.code
    message = _message(error, retry_after)
    if is_htmx():
        response = make_response(render_template("regions/limit_error.html", message=message, code=code), code)
        if request.method == "POST" and request.endpoint in COMPOSER_ENDPOINTS:
            retarget(response, "#composer-error")
    else:
        response = make_response(_limited_page(message, code, _resend()), code)
    response.headers["Retry-After"] = str(retry_after)
    response.vary.add("HX-Request")
    return response


def _cap_reached(error):
    """403 for a cap on what a user stores: said in the composer (htmx), else on a page."""
    if is_htmx():
        response = make_response(render_template("regions/limit_error.html", message=str(error), code=403), 403)
        retarget(response, "#composer-error")
    else:
        # A full conversation: the text can still go to a new chat. Too many conversations: after deleting some.
        full = request.endpoint == "chat.send"
        resend = _resend(url_for("chat.start"), "Send in a new chat") if full else _resend()
        response = make_response(_limited_page(str(error), 403, resend, heading="Limit reached"), 403)
    response.vary.add("HX-Request")
    return response


def init_app(app):
    """Answer every refusal: Flask-Limiter's and ours (429), the process's (503), a storage cap (403)."""
    app.register_error_handler(429, _too_many)
    app.register_error_handler(Busy, _too_many)
    app.register_error_handler(CapReached, _cap_reached)
