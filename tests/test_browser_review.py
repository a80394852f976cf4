"""What a user reviewing the app in Chromium found: a streaming reply laid out as its final render (no jump
at the end), and the focus kept near the control a swap removes (Stop, Retry).

The model is a FAKE (support's FakeSlowLLM) writing known Markdown slowly: the model's text is not under test.
"""

import pytest
from playwright.sync_api import expect

from support import FakeSlowLLM, LiveServer, close_page, in_pieces, open_page, send_message

pytestmark = pytest.mark.browser

REPLY = (
    "Some code:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nA table:\n\n"
    "| fruit | colour |\n|---|---|\n| apple | red |\n| kiwi | green |\n\nThe end of the reply."
)
TITLE = "Fruit and code"

# Records, in the page, the streaming reply's height the moment its final render arrives.
RECORD_HEIGHT_BEFORE_FINAL = """
document.addEventListener("htmx:sseBeforeMessage", function (event) {
  if (event.detail.type !== "final") return;
  var content = event.target.querySelector(".content");
  if (content) window.heightBeforeFinal = content.getBoundingClientRect().height;
});
"""


@pytest.fixture
def slow_app(make_app):
    app = make_app()
    app.extensions["llm"] = FakeSlowLLM(in_pieces(REPLY), title=TITLE)
    return app


@pytest.fixture
def server(slow_app):
    with LiveServer(slow_app) as server:
        yield server


def test_the_streaming_reply_has_the_height_of_its_final_render_and_the_tab_its_title(browser, server):
    page = open_page(browser, server.url)
    page.add_init_script(RECORD_HEIGHT_BEFORE_FINAL)
    page.reload()
    reply = send_message(page)
    expect(reply).to_have_attribute("data-status", "done")
    final = reply.locator(".content").evaluate("content => content.getBoundingClientRect().height")
    # The code block was finished before the reply: it had its header already, so nothing moves at the end.
    assert abs(page.evaluate("window.heightBeforeFinal") - final) <= 1
    # The tab's title follows the conversation's: the first message, then the model's title.
    expect(page).to_have_title(f"{TITLE} · Chatbot")
    page.get_by_role("link", name="New chat").click()
    expect(page).to_have_title("New chat · Chatbot")
    close_page(page)


def test_stop_then_retry_keep_the_focus_on_the_reply(browser, server, slow_app):
    slow_app.extensions["llm"] = FakeSlowLLM(in_pieces(REPLY), interval=0.1, title=TITLE)
    page = open_page(browser, server.url)
    reply = send_message(page)
    page.get_by_role("button", name="Stop generating").focus()
    page.keyboard.press("Enter")
    expect(reply).to_have_attribute("data-status", "stopped")
    expect(page.get_by_role("button", name="Retry")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Stop generating")).to_be_focused()
    expect(reply).to_have_attribute("data-status", "done", timeout=30_000)
    expect(page.get_by_role("button", name="Regenerate")).to_be_focused()
    close_page(page)


def test_the_phone_drawer_takes_the_focus_when_it_opens_and_gives_it_back(browser, server):
    page = open_page(browser, server.url, viewport={"width": 375, "height": 740})
    toggle = page.get_by_role("button", name="Conversations")
    toggle.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("link", name="New chat")).to_be_focused()
    page.keyboard.press("Escape")
    expect(toggle).to_be_focused()
    expect(page.locator("#sidebar")).to_be_hidden()
    close_page(page)


def test_choosing_an_export_in_the_menu_closes_it(browser, server):
    page = open_page(browser, server.url)
    expect(send_message(page)).to_have_attribute("data-status", "done")
    page.get_by_title("Conversation actions").click()
    menu = page.locator("#conversation-menu")
    expect(menu).to_have_attribute("open", "")
    with page.expect_download():
        page.get_by_role("link", name="Export Markdown").click()
    expect(menu).not_to_have_attribute("open", "")
    close_page(page)
