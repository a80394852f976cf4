"""A real OpenID Connect provider for the sign-in tests (oidc-provider-mock, built on Authlib), and the
sign-in round trip without JavaScript: the app's test client and plain HTTP to the provider, redirect by redirect.

The provider plays Hugging Face: tests point HF_OAUTH_ISSUER at it, so billing runs as in production.
"""

import json
import threading
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
from oidc_provider_mock import run_server_in_thread

CLIENT_ID = "chatbot-test-client"
CLIENT_SECRET = "chatbot-test-secret"


@contextmanager
def oidc_provider(access_token_max_age=timedelta(hours=1)):
    """A provider on a free loopback port; yields its issuer URL."""
    with run_server_in_thread(port=0, require_nonce=True, access_token_max_age=access_token_max_age) as server:
        yield f"http://localhost:{server.server_port}"


@contextmanager
def announced_elsewhere(issuer):
    """A tiny server whose discovery document announces itself as the issuer (as a provider at its address
    would) while every endpoint is still issuer's: the ID tokens then name issuer, not the one discovered.
    Yields its URL, to configure as the issuer."""

    class Discovery(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            document = httpx.get(f"{issuer}{self.path}").json() | {"issuer": announced}
            body = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Discovery)
    announced = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield announced
    finally:
        server.shutdown()
        server.server_close()


def set_claims(issuer, sub, **claims):
    """What the provider says about user sub (name, preferred_username, orgs, ...)."""
    httpx.put(f"{issuer}/users/{sub}", json=claims).raise_for_status()


def sign_in_settings(issuer, **settings):
    """The app's settings for signing in with the provider as Hugging Face."""
    return {
        "HF_OAUTH_ISSUER": issuer,
        "HF_OAUTH_CLIENT_ID": CLIENT_ID,
        "HF_OAUTH_CLIENT_SECRET": CLIENT_SECRET,
        **settings,
    }


def with_params(url, **changes):
    """url with some of its query parameters changed (a test tampering with the authorization request)."""
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def start(client, path="/auth/oidc/huggingface/start"):
    """Begin a sign-in; return the provider's authorization URL the app redirects to."""
    response = client.get(path)
    assert response.status_code == 302, response.text
    return response.headers["Location"]


def authorize(authorization_url, sub):
    """The user signs in at the provider as sub and consents; return the app's callback path and query."""
    response = httpx.post(authorization_url, data={"sub": sub})
    assert response.status_code == 302, response.text
    parts = urlsplit(response.headers["Location"])
    return f"{parts.path}?{parts.query}"


def sign_in(client, sub, path="/auth/oidc/huggingface/start"):
    """The whole round trip; return the app's answer to the callback."""
    return client.get(authorize(start(client, path), sub))
