"""Live replies in Chromium: Markdown rendered as it arrives, and replies that survive reload, a closed tab,
a dropped network, a second tab, and stop only on Stop.

The model is a FAKE (support's FakeSlowLLM) that writes a known Markdown reply slowly, so the page can be
compared with what was generated; what is tested is the app's streaming, resume and rendering.
"""

import threading
import time

import pytest
from playwright.sync_api import expect

from chatbot.render import render_markdown
from support import (
    FakeSlowLLM,
    FaultProxy,
    LiveServer,
    close_page,
    in_pieces,
    open_page,
    send_message,
    stored_conversations,
)

pytestmark = pytest.mark.browser

REPLY = (
    "## A heading\n\nSome **bold** text and a list:\n\n- first item\n- second item\n\n"
    "```python\ndef greet(name):\n    return 'hello ' + name\n```\n\n"
    "| column | value |\n|---|---|\n| one | 1 |\n| two | 2 |\n\n"
    # Time for the page to be looked at after the table, before the reply ends.
    + "More text follows the table, so the test sees it while the reply streams. " * 8
    + "\n\nThe end of the reply."
)


# Records, in the page, what the streaming bubble held the moment its final render arrived (without the
# headers app.js adds to finished code blocks).
RECORD_BEFORE_FINAL = """
document.addEventListener("htmx:sseBeforeMessage", function (event) {
  if (event.detail.type !== "final") return;
  var blocks = event.target.querySelector(".live-blocks"), tail = event.target.querySelector(".live-tail");
  if (!blocks || !tail) return;
  var held = document.createElement("div");
  held.innerHTML = blocks.innerHTML + tail.innerHTML;
  held.querySelectorAll(".code-header").forEach(function (header) { header.remove(); });
  held.querySelectorAll("[data-decorated]").forEach(function (el) { el.removeAttribute("data-decorated"); });
  window.beforeFinal = held.innerHTML;
});
"""
# Counts, in the page, the errors of its reply streams (a dropped network is one).
COUNT_STREAM_ERRORS = """
window.streamErrors = 0;
document.addEventListener("htmx:sseError", function () { window.streamErrors += 1; });
"""
# The finished reply's HTML without what app.js adds at the end (code block headers).
FINAL_WITHOUT_DECORATIONS = """
(article) => {
  var content = article.querySelector(".content.markdown").cloneNode(true);
  content.querySelectorAll(".code-header").forEach(function (header) { header.remove(); });
  content.querySelectorAll("[data-decorated]").forEach(function (el) { el.removeAttribute("data-decorated"); });
  return content.innerHTML;
}
"""


@pytest.fixture
def slow_app(make_app):
    app = make_app()
    app.extensions["llm"] = FakeSlowLLM(in_pieces(REPLY))
    return app


@pytest.fixture
def server(slow_app):
    with LiveServer(slow_app) as server:
        yield server


def stored_reply(app):
    [conversation] = stored_conversations(app)
    return conversation["messages"][-1]


def wait_for_stored(app, status, seconds=30):
    deadline = time.monotonic() + seconds
    while stored_reply(app)["status"] != status and time.monotonic() < deadline:
        time.sleep(0.1)
    return stored_reply(app)


def test_markdown_renders_while_the_reply_streams_and_the_end_does_not_jump(browser, server, slow_app):
    page = open_page(browser, server.url)
    page.add_init_script(RECORD_BEFORE_FINAL)
    page.reload()
    reply = send_message(page)
    streaming = page.locator('[data-role="assistant"][data-status="streaming"]')
    # Before the reply ends: a heading, a highlighted code block and a table, and never a raw fence.
    expect(streaming.locator("h2")).to_have_text("A heading")
    expect(streaming.locator(".highlight code .k").first).to_have_text("def")
    expect(streaming.locator(".code-header")).to_contain_text("python")  # once the block is finished
    assert "```" not in streaming.inner_text()
    expect(streaming.locator("table td").first).to_have_text("one")
    expect(reply).to_have_attribute("data-status", "done")
    before = page.evaluate("window.beforeFinal")
    assert before == reply.evaluate(FINAL_WITHOUT_DECORATIONS)
    assert stored_reply(slow_app)["content"] == REPLY
    assert str(render_markdown(REPLY)).count("<table>") == page.locator(".content.markdown table").count()
    close_page(page)


def test_reload_mid_reply_continues_and_ends_with_the_stored_text(browser, server, slow_app):
    page = open_page(browser, server.url)
    send_message(page)
    expect(page.locator('[data-status="streaming"] h2')).to_have_text("A heading")
    page.reload()
    reply = page.locator('[data-role="assistant"]')
    expect(reply).to_have_attribute("data-status", "done")
    assert stored_reply(slow_app)["content"] == REPLY
    expect(reply.locator("table td").first).to_have_text("one")
    close_page(page)


def test_closing_the_page_mid_reply_lets_it_complete(browser, server, slow_app):
    page = open_page(browser, server.url)
    send_message(page)
    expect(page.locator('[data-status="streaming"] h2')).to_have_text("A heading")
    close_page(page)
    reply = wait_for_stored(slow_app, "done")
    assert reply["content"] == REPLY


class CountingSlowLLM(FakeSlowLLM):
    """A FAKE model, FakeSlowLLM counting the pieces it has written: a test waits for a reply to go on."""

    written = 0

    def stream(self, messages, model=None, **params):
        """Yield FakeSlowLLM's pieces, counting them."""
        for piece in super().stream(messages, model, **params):
            self.written += 1
            yield piece


def test_a_dropped_network_resumes_with_nothing_missing_or_twice(browser, server, slow_app):
    model = slow_app.extensions["llm"] = CountingSlowLLM(in_pieces(REPLY), interval=0.06)
    proxy = FaultProxy(server.port).start()
    page = open_page(browser, proxy.url)
    page.add_init_script(RECORD_BEFORE_FINAL)
    page.add_init_script(COUNT_STREAM_ERRORS)
    page.reload()
    reply = send_message(page)
    expect(page.locator('[data-status="streaming"] h2')).to_have_text("A heading")
    proxy.cut()
    page.wait_for_function("() => window.streamErrors > 0")  # the page lost its stream
    written, deadline = model.written, time.monotonic() + 30
    while model.written < written + 20:  # and the reply goes on on the server meanwhile
        assert time.monotonic() < deadline, "the reply stopped while the network was down"
        time.sleep(0.05)
    proxy.restore()
    expect(reply).to_have_attribute("data-status", "done", timeout=60_000)
    assert page.evaluate("window.beforeFinal") == reply.evaluate(FINAL_WITHOUT_DECORATIONS)
    assert stored_reply(slow_app)["content"] == REPLY
    page.context.close()  # the cut may log a failed request: not an error of the page's own


class HeldSlowLLM(FakeSlowLLM):
    """A FAKE slow model that stops after its first `held` pieces until the test sets `release` (30 s at most):
    however slowly a second tab opens, the reply is still being written when it does."""

    def __init__(self, pieces, held):
        super().__init__(pieces)
        self.held, self.release = held, threading.Event()

    def stream(self, messages, model=None, **params):
        for number, piece in enumerate(super().stream(messages, model, **params)):
            if number == self.held:
                self.release.wait(30)
            yield piece


def test_two_tabs_on_one_conversation_both_see_the_reply_live(browser, server, slow_app):
    model = slow_app.extensions["llm"] = HeldSlowLLM(in_pieces(REPLY), held=len(in_pieces(REPLY)) // 2)
    first = open_page(browser, server.url)
    send_message(first)
    expect(first.locator('[data-status="streaming"] h2')).to_have_text("A heading")
    second = first.context.new_page()
    second.goto(first.url)
    # The second tab attaches mid-reply, shows what came so far, and follows the rest live.
    expect(second.locator('[data-status="streaming"] h2')).to_have_text("A heading")
    model.release.set()
    for page in (first, second):
        expect(page.locator('[data-role="assistant"]')).to_have_attribute("data-status", "done")
        expect(page.locator('[data-role="assistant"] table td').first).to_have_text("one")
    second.close()
    close_page(first)


def test_stop_ends_the_reply_and_keeps_what_was_generated(browser, server, slow_app):
    slow_app.extensions["llm"] = FakeSlowLLM(in_pieces(REPLY), interval=0.1)
    page = open_page(browser, server.url)
    reply = send_message(page)
    expect(page.locator('[data-status="streaming"] h2')).to_have_text("A heading")
    page.get_by_role("button", name="Stop generating").click()
    expect(reply).to_have_attribute("data-status", "stopped")
    expect(reply).to_contain_text("Stopped.")
    stored = wait_for_stored(slow_app, "stopped")
    assert stored["content"] and REPLY.startswith(stored["content"]) and stored["content"] != REPLY
    close_page(page)


def test_sending_starts_the_model_before_the_stream_opens(browser, server, slow_app):
    started = threading.Event()
    model = slow_app.extensions["llm"]
    original = model.stream

    def stream(*args, **kwargs):
        started.set()
        yield from original(*args, **kwargs)

    model.stream = stream
    page = open_page(browser, server.url)
    page.route("**/stream*", lambda route: (started.wait(10), route.continue_()))
    send_message(page)
    expect(page.locator('[data-role="assistant"]')).to_have_attribute("data-status", "done")
    assert started.is_set()
    close_page(page)
