"""A ChatGPT-style chatbot: Flask renders HTML, htmx swaps fragments, replies stream over SSE."""

import os

from flask import Flask, current_app, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect

from . import assets, config, htmx, live, llm, logs, replies, storage
from .conversations import MAX_TITLE_CHARS, NotFound, display_title

csrf = CSRFProtect()


def create_app(test_config=None):
    """Build the app: settings, storage, model, blueprints, error pages and CLI."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(config.from_environment())
    app.config.update(
        MAX_CONTENT_LENGTH=1024 * 1024,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        PERMANENT_SESSION_LIFETIME=60 * 60 * 24 * 365,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
    )
    if test_config is not None:
        app.config.from_mapping(test_config)
    config.validate(app)
    os.makedirs(app.instance_path, exist_ok=True)
    logs.init_app(app)  # one JSON line per request (LOG_FORMAT=text for readable lines)

    from .render import render_markdown

    app.add_template_filter(render_markdown, "markdown")
    app.add_template_filter(display_title)
    app.jinja_env.globals["max_title_chars"] = MAX_TITLE_CHARS
    csrf.init_app(app)
    storage.init_app(app)
    llm.init_app(app)
    live.init_app(app)
    replies.init_app(app)
    assets.init_app(app)  # static files under hashed names through WhiteNoise; pages compressed

    from . import auth, chat, identity, limits, security, sidebar

    security.init_app(app)  # first: the client's real address and scheme, for everything after
    limits.init_app(app)  # rate limits, reply slots, token budgets, open streams
    identity.init_app(app)
    app.register_blueprint(auth.bp)
    from . import billing, oidc

    oidc.init_app(app)  # sign in with Hugging Face, or another OpenID Connect provider
    billing.init_app(app)  # who pays for a reply
    app.register_blueprint(chat.bp)
    from . import branches

    app.register_blueprint(branches.bp)
    app.register_blueprint(sidebar.bp)
    from . import share

    app.register_blueprint(share.bp)
    from . import account, ops

    app.register_blueprint(ops.bp)
    csrf.exempt(ops.bp)  # probes post nothing and carry no session
    app.register_blueprint(account.bp)

    app.after_request(_security_headers)
    _register_error_pages(app)
    _register_commands(app)
    return app


# No inline scripts, styles or event handlers anywhere: the app's JavaScript lives in static files.
# The app has no frames, plugins or <base>: frame-src, object-src and base-uri forbid them outright, so
# markup that got into a page could not load a frame, a plugin, or turn the page's relative URLs elsewhere.
# form-action also names the sign-in providers' origins (oidc.py): "Connect" posts a form whose answer
# redirects there, and Chromium holds a form's redirects to form-action too.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'{form_targets}; "
    "frame-ancestors 'none'"
)


def content_security_policy(form_targets=()):
    """The Content-Security-Policy header, forms allowed to post (or redirect) to 'self' and form_targets."""
    return CONTENT_SECURITY_POLICY.format(form_targets="".join(f" {origin}" for origin in form_targets))


def _security_headers(response):
    policy = current_app.extensions.get("csp") or content_security_policy()
    response.headers.setdefault("Content-Security-Policy", policy)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "static":
        # Every answer a view makes is made for one session (its conversations, its CSRF token): no cache,
        # shared or the browser's own, may keep it. A view that means otherwise says so (the share page).
        # Static files keep their own caching (WhiteNoise answers them before Flask, except in debug).
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _register_error_pages(app):
    def error_page(status, message):
        # `status` is the response's; the templates get it as `code`.
        return htmx.page_or_fragment("error.html", "regions/error.html", status=status, code=status, message=message)

    @app.errorhandler(404)
    @app.errorhandler(NotFound)  # the domain's "no such conversation or message for this user"
    def not_found(error):
        return error_page(404, "This page or conversation does not exist.")

    @app.errorhandler(CSRFError)
    def csrf_failed(error):
        return error_page(400, "Your session expired or the form was stale. Reload the page and try again.")

    @app.errorhandler(413)
    def too_large(error):
        return error_page(413, "That request is too large.")

    @app.errorhandler(storage.StorageError)
    def storage_down(error):
        app.logger.error("storage unavailable: %s", error)
        if request.method == "POST" and htmx.is_htmx():
            # The composer keeps the text; say plainly that it was not sent.
            message = "Your message was not sent: conversations cannot be reached right now. Please retry."
            response = app.make_response((render_template("regions/composer_error.html", error=message), 503))
            return htmx.retarget(response, "#composer-error")
        return error_page(
            503, "Conversations cannot be reached right now. Nothing was lost; please try again in a moment."
        )


def _register_commands(app):
    from .cli import guests_cli, models_cli, release_check, storage_cli, usage, users_cli

    app.cli.add_command(storage_cli)
    for command in (models_cli, users_cli, guests_cli, usage, release_check):
        app.cli.add_command(command)
