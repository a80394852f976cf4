"""The headers every answer carries: a strict Content-Security-Policy, nosniff, a same-origin referrer,
and no-store on whatever a view makes for one session."""

from flask import current_app, request

# No inline scripts, styles or event handlers anywhere: the app's JavaScript lives in static files.
# The app has no frames, plugins or <base>: frame-src, object-src and base-uri forbid them outright, so
# markup that got into a page could not load a frame, a plugin, or turn the page's relative URLs elsewhere.
# form-action also names the sign-in providers' origins (oidc.py): "Connect" posts a form whose answer
# redirects there, and Chromium holds a form's redirects to form-action too.
# img-src blob: is for the composer's thumbnails of images about to be attached (app.js makes object URLs of
# the user's own files); a blob: URL can only be made by a script of this origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'{form_targets}; "
    "frame-ancestors 'none'"
)


def content_security_policy(form_targets=()):
    """The Content-Security-Policy header, forms allowed to post (or redirect) to 'self' and form_targets."""
    return CONTENT_SECURITY_POLICY.format(form_targets="".join(f" {origin}" for origin in form_targets))


def _security_headers(response):
    """The headers of every answer (a view's own value wins)."""
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


def init_app(app):
    """Add the headers to every response of the app."""
    app.after_request(_security_headers)
