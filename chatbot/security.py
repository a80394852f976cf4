"""HTTPS behind a proxy: the real client address and scheme, Secure cookies, HSTS, http -> https.

Heroku's router ends TLS and speaks http to the dyno, adding X-Forwarded-For
(appended to whatever the client sent) and X-Forwarded-Proto. ProxyFix
believes only the TRUSTED_PROXY_HOPS right-most values, so a client's own
X-Forwarded-For changes nothing. Everything else follows from the scheme:
a request that arrived over HTTPS gets Secure cookies and HSTS; with
FORCE_HTTPS, or when a trusted proxy says the client used http, it is sent
to https. Local `make run` over http has no proxy and none of this applies.
"""

from flask import redirect, request
from werkzeug.middleware.proxy_fix import ProxyFix

# A health check from inside the platform may use plain http.
HTTP_ALLOWED_PATHS = ("/healthz",)


class SecureCookies:
    """WSGI middleware: every cookie set over HTTPS is marked Secure (session, remember-me, any other)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get("wsgi.url_scheme") != "https":
            return self.app(environ, start_response)

        def secure_start_response(status, headers, exc_info=None):
            headers = [(name, _secure(value) if name.lower() == "set-cookie" else value) for name, value in headers]
            return start_response(status, headers, exc_info)

        return self.app(environ, secure_start_response)


def _secure(cookie):
    attributes = [part.strip().lower() for part in cookie.split(";")[1:]]
    return cookie if "secure" in attributes else f"{cookie}; Secure"


def _proxy_said_http():
    # ProxyFix keeps the original headers: a trusted proxy's X-Forwarded-Proto of "http" means the client used http.
    original = request.environ.get("werkzeug.proxy_fix.orig", {})
    return bool(original) and request.scheme == "http" and bool(request.headers.get("X-Forwarded-Proto"))


def init_app(app):
    """Trust the configured proxies; send http to https when asked to; HSTS over HTTPS."""
    hops = app.config["TRUSTED_PROXY_HOPS"]
    app.wsgi_app = SecureCookies(app.wsgi_app)
    if hops:
        # Outside SecureCookies, so that it sees the scheme the client used.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_port=hops)
    if app.config["FORCE_HTTPS"]:
        app.config["SESSION_COOKIE_SECURE"] = True
        app.config["REMEMBER_COOKIE_SECURE"] = True

    @app.before_request
    def https_only():
        if request.is_secure or request.path in HTTP_ALLOWED_PATHS:
            return None
        if app.config["FORCE_HTTPS"] or _proxy_said_http():
            # 308 keeps the method and body, so a form posted over http is not lost.
            return redirect(request.url.replace("http://", "https://", 1), 308)
        return None

    @app.after_request
    def strict_transport_security(response):
        if request.is_secure and app.config["HSTS_SECONDS"] > 0:
            response.headers.setdefault("Strict-Transport-Security", f"max-age={app.config['HSTS_SECONDS']}")
        return response
