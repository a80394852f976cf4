"""The first token in Chromium: a reply's text shows as soon as the model sends it, over one stream opened
as the send's answer arrives (X-Reply-Stream, app.js), for a new chat's first message and a follow-up.

The model is a FAKE server (support's FakeModelServer, through the Hugging Face backend) that sends one piece
and then pauses: what is tested is that the app shows that piece while the model is still pausing.
"""

import pytest
from playwright.sync_api import expect

from support import FakeModelServer, LiveServer, close_page, open_page

pytestmark = pytest.mark.browser

PAUSE = 5  # seconds the fake model waits after its first piece; the page must show it well before


@pytest.fixture
def model():
    """The FAKE model server: one piece, a pause, then the rest."""
    with FakeModelServer(pieces=["First ", "and the rest."], interval=PAUSE) as server:
        yield server


@pytest.fixture
def server(make_app, model):
    app = make_app(LLM_BACKEND="huggingface", HF_BASE_URL=model.url, HF_TOKEN="hf_test", CHATBOT_MODELS=["fake-model"])
    with LiveServer(app) as server:
        yield server


def send_and_see_first_piece(page, text):
    """Send text, and expect the new reply to show the model's first piece while the model pauses."""
    replies = page.locator('[data-role="assistant"]')
    before = replies.count()
    page.locator("#composer-text").fill(text)
    page.locator("#composer-text").press("Enter")
    expect(replies).to_have_count(before + 1)
    reply = replies.last
    expect(reply.locator(".content")).to_have_text("First", timeout=(PAUSE - 2) * 1000)
    expect(reply).to_have_attribute("data-status", "streaming")  # the model is still pausing
    expect(reply).to_have_attribute("data-status", "done", timeout=(PAUSE + 10) * 1000)
    expect(reply.locator(".content")).to_have_text("First and the rest.")


def test_the_first_piece_shows_while_the_model_pauses_over_one_stream(browser, server):
    page = open_page(browser, server.url)
    streams = []
    page.on("request", lambda request: streams.append(request.url) if "/stream" in request.url else None)
    send_and_see_first_piece(page, "Hello there.")  # a new chat: the answer replaces the welcome
    send_and_see_first_piece(page, "And again.")  # a follow-up: the answer is appended
    # One stream per reply: the one app.js opened as the answer arrived is the one the SSE extension uses.
    assert len(streams) == 2 and len(set(streams)) == 2
    close_page(page)
