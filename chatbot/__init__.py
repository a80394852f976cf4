"""A ChatGPT-style chatbot: Flask renders HTML, htmx swaps fragments, replies stream over SSE."""

import os

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect

from . import assets, config, htmx, live, llm, logs, replies, storage
from .conversations import MAX_TITLE_CHARS, NotFound, display_title

csrf = CSRFProtect()


def create_app(test_config=None):
    """Build the app: settings, storage, model, blueprints, error pages and CLI."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(config.from_environment())
    app.config.update(
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        PERMANENT_SESSION_LIFETIME=60 * 60 * 24 * 365,
        SESSION_REFRESH_EACH_REQUEST=False,  # identity.py renews the cookie once a day instead
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
    )
    if test_config is not None:
        app.config.from_mapping(test_config)
    # A message's files, its text and the form's fields; a bigger body is cut off with a 413 unread. Flask's
    # defaults hold the key (None: no limit), so setdefault would never set it.
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = app.config["ATTACHMENT_MESSAGE_BYTES"] + 1024 * 1024
    config.validate(app)
    os.makedirs(app.instance_path, exist_ok=True)
    logs.init_app(app)  # one JSON line per request (LOG_FORMAT=text for readable lines)

    from .attachments.base import megabytes
    from .render import render_markdown

    app.add_template_filter(render_markdown, "markdown")
    app.add_template_filter(display_title)
    app.add_template_filter(megabytes)  # a file's size, as the composer's previews say it
    app.jinja_env.globals["max_title_chars"] = MAX_TITLE_CHARS
    csrf.init_app(app)
    storage.init_app(app)
    llm.init_app(app)
    live.init_app(app)
    replies.init_app(app)
    assets.init_app(app)  # static files under hashed names through WhiteNoise; pages compressed

    _register_blueprints(app)
    _register_error_pages(app)
    _register_commands(app)
    return app


def _register_blueprints(app):
    """The request-level parts (proxies, headers, limits, identity, sign-in, billing), then the blueprints."""
    from . import (
        account,
        auth,
        billing,
        branches,
        chat,
        files,
        headers,
        identity,
        limits,
        oidc,
        ops,
        security,
        share,
        sidebar,
    )

    security.init_app(app)  # first: the client's real address and scheme, for everything after
    headers.init_app(app)  # CSP, nosniff, referrer, no-store on every answer a view makes
    limits.init_app(app)  # rate limits, reply slots, token budgets, open streams
    identity.init_app(app)
    oidc.init_app(app)  # sign in with Hugging Face, or another OpenID Connect provider (its own blueprint)
    billing.init_app(app)  # who pays for a reply
    for blueprint in (auth.bp, chat.bp, branches.bp, files.bp, sidebar.bp, share.bp, ops.bp, account.bp):
        app.register_blueprint(blueprint)
    csrf.exempt(ops.bp)  # probes post nothing and carry no session


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
