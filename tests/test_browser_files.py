"""An attached image in Chromium: opened full size it logs no console error (the image viewer's own inline
styles apply), and once its conversation is deleted the browser no longer shows it (before: max-age=3600 kept
it in the browser's cache for an hour). The model is a FAKE (FakeLLM): what is tested is the file's answer."""

import re

import pytest
from playwright.sync_api import expect

from support import FakeLLM, LiveServer, build_app, close_page, open_page
from support.files import png

pytestmark = pytest.mark.browser

# Whether an image URL shows in a page (from the browser's cache, or asked again).
SHOWS = """url => new Promise(done => {
  const image = new Image();
  image.onload = () => done(image.naturalWidth);
  image.onerror = () => done("not shown");
  image.src = url;
})"""


@pytest.fixture
def server(tmp_path):
    app = build_app(tmp_path, FakeLLM(), VISION_MODELS=["SmolLM2-135M-Instruct"])
    with LiveServer(app) as server:
        yield server
    app.extensions["replies"].wait_for_jobs(60)


def send_image(page, server):
    """Send a 64-pixel-wide PNG as the page's guest (the browser's own cookies); return (cid, the image's URL)."""
    image = {"name": "red.png", "mimeType": "image/png", "buffer": png((64, 32))}
    sent = page.request.post(server.url + "/new", multipart={"text": "Look", "files": image})
    cid = sent.url.split("#")[0].rsplit("/", 1)[1]
    return cid, re.search(r"/files/[A-Za-z0-9_-]{16}", sent.text()).group(0)


def test_an_image_opened_full_size_logs_no_console_error(browser, server):
    page = open_page(browser, server.url + "/new")
    _, url = send_image(page, server)
    response = page.goto(server.url + url)
    assert response.status == 200 and response.headers["content-security-policy"].endswith("; sandbox")
    # A locator's wait, not wait_for_function's string: that is compiled in the page, which a CSP may refuse.
    expect(page.locator("img")).to_have_js_property("naturalWidth", 64)
    close_page(page)  # fails on any console error (3 CSP errors before: the viewer's inline styles)


def test_after_its_conversation_is_deleted_the_browser_no_longer_shows_the_image(browser, server):
    page = open_page(browser, server.url + "/new")
    cid, url = send_image(page, server)
    page.goto(f"{server.url}/c/{cid}")
    expect(page.locator(f'img[src="{url}"]')).to_have_js_property("naturalWidth", 64)
    assert page.evaluate(SHOWS, url) == 64  # shown, and in the browser's cache

    assert page.request.post(f"{server.url}/sidebar/{cid}/delete").ok
    page.goto(server.url + "/new")  # another page (a page keeps the images it showed, whatever the headers)
    assert page.evaluate(SHOWS, url) == "not shown"
    assert page.goto(server.url + url).status == 404
    assert all("404" in error for error in page.errors)  # the refused image's load, said in the console
    page.errors.clear()
    close_page(page)
