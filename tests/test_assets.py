"""What the browser downloads: pages and static files compressed, static files under hashed names cached for
good, and the reply's event stream never compressed (it must reach the browser piece by piece)."""

import gzip
import re
from pathlib import Path

import brotli
import pytest

from chatbot.assets import hashed_name
from support import HTMX, finished_conversation, start_conversation, stream_url

DECODE = {"br": brotli.decompress, "gzip": gzip.decompress}


def static_urls(html):
    """The static files a page links: stylesheets, scripts, icons."""
    return re.findall(r'(?:href|src)="(/static/[^"]+)"', html)


def without_csrf_tokens(html):
    """html with every CSRF token (signed: value.timestamp.signature) blanked."""
    return re.sub(r"[\w-]{20,}\.[\w-]{4,8}\.[\w-]{20,}", "TOKEN", html)


@pytest.mark.parametrize("encoding", ["br", "gzip"])
def test_pages_are_compressed_as_the_browser_accepts(client, encoding):
    plain = client.get("/new").text
    response = client.get("/new", headers={"Accept-Encoding": encoding})
    assert response.headers["Content-Encoding"] == encoding
    assert "Accept-Encoding" in response.headers["Vary"]
    # The CSRF token is signed with the second it was made in: the two pages differ there when a second ticks.
    assert without_csrf_tokens(DECODE[encoding](response.data).decode()) == without_csrf_tokens(plain)
    assert len(response.data) < len(plain) / 2


def test_a_client_that_accepts_no_compression_gets_plain_html(client):
    response = client.get("/new", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in response.headers
    assert "How can I help?" in response.text


@pytest.mark.parametrize("encoding", ["br", "gzip"])
def test_static_files_have_hashed_names_are_precompressed_and_cached_for_good(client, encoding):
    urls = static_urls(client.get("/new").text)
    kinds = {url.rsplit(".", 1)[1] for url in urls}
    assert {"css", "js", "svg"} <= kinds
    for url in urls:
        response = client.get(url, headers={"Accept-Encoding": encoding})
        assert response.status_code == 200, url
        assert response.headers["Content-Encoding"] == encoding, url
        assert response.headers["Cache-Control"] == "max-age=315360000, public, immutable", url
        name = url.rsplit("/", 1)[1]
        plain_url = url.replace(name, re.sub(r"\.[0-9a-f]{10}(?=\.\w+$)", "", name))
        plain = client.get(plain_url)
        # The hash is the content's: the hashed name serves exactly the file of the plain name.
        assert DECODE[encoding](response.data) == plain.data
        assert name == hashed_name(plain_url.rsplit("/", 1)[1], plain.data)


def test_plain_static_names_are_cached_briefly(client):
    response = client.get("/static/app.css")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "max-age=60, public"


def test_the_event_stream_is_never_compressed(client):
    cid, mid = start_conversation(client)
    response = client.get(stream_url(cid, mid), headers={"Accept-Encoding": "gzip, br, zstd, deflate"}, buffered=False)
    assert response.mimetype == "text/event-stream"
    assert "Content-Encoding" not in response.headers
    first = next(iter(response.response))
    assert first.startswith((b"event:", b"id:", b":", b"retry:"))  # readable text, at once
    body = first + b"".join(response.response)
    assert b"event: done" in body


def test_every_answer_made_for_a_session_is_never_stored(client):
    """A conversation, its fragments, the account, an export, the stream: made for one session, so no cache,
    shared or the browser's own, may keep them (a shared computer's back button after logging out)."""
    cid, mid = finished_conversation(client, "my private question")
    requests = [
        ("/new", {}),
        (f"/c/{cid}", {}),
        (f"/c/{cid}", {**HTMX, "HX-Target": "chat"}),
        (f"/sidebar/{cid}", HTMX),
        ("/sidebar/search?q=private", HTMX),
        ("/account/", {}),
        (f"/c/{cid}/export.md", {}),
        (f"/c/{cid}/export.json", {}),
        ("/account/export.zip", {}),
        (stream_url(cid, mid), {}),
        ("/", {}),  # a redirect to the latest conversation
        ("/c/" + "A" * 16, {}),  # a 404 page carries the session's sidebar too
    ]
    for path, headers in requests:
        response = client.get(path, headers=headers)
        assert response.headers.get("Cache-Control") == "no-store", (path, headers)
    sent = client.post(f"/c/{cid}/messages", data={"text": "and another"}, headers=HTMX)
    assert sent.status_code == 200 and sent.headers["Cache-Control"] == "no-store"


def test_static_files_keep_their_caching_beside_private_pages(client):
    for url in static_urls(client.get("/new").text):
        assert "no-store" not in client.get(url).headers["Cache-Control"], url


def test_the_apps_own_script_is_served_minified_and_vendored_files_exactly_as_shipped(client):
    """app.js loses its comments and spaces in the build (a first visit's JavaScript budget); htmx and its SSE
    extension are served byte for byte as their packages ship them."""
    static = Path(client.application.static_folder)
    urls = static_urls(client.get("/new").text)
    scripts = {url.rsplit("/", 1)[1].split(".", 1)[0]: client.get(url).data for url in urls if url.endswith(".js")}
    source = (static / "app.js").read_bytes()
    assert b"//" in source and b"// " not in scripts["app"]
    assert len(scripts["app"]) < 0.8 * len(source)
    vendored = [url for url in urls if "/vendor/" in url]
    assert len(vendored) == 2
    for url in vendored:
        shipped = next(static.glob(f"vendor/*/{re.sub(r'[.][0-9a-f]{10}(?=[.]js$)', '', url.rsplit('/', 1)[1])}"))
        assert client.get(url).data == shipped.read_bytes(), url
