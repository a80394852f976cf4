"""The focus in Chromium stays near the control a swap removes or a drawer hides: Stop, then Retry, then
Regenerate; the phone drawer takes the focus when it opens and gives it back to its toggle.

The model is a FAKE (support's FakeSlowLLM) writing known Markdown slowly: the model's text is not under test.
"""

import pytest
from playwright.sync_api import expect

from support import SLOW_FRUIT_REPLY, SLOW_FRUIT_TITLE, FakeSlowLLM, close_page, in_pieces, open_page, send_message

pytestmark = pytest.mark.browser


def test_stop_then_retry_keep_the_focus_on_the_reply(browser, slow_fruit_server, slow_fruit_app):
    slow_fruit_app.extensions["llm"] = FakeSlowLLM(in_pieces(SLOW_FRUIT_REPLY), interval=0.1, title=SLOW_FRUIT_TITLE)
    page = open_page(browser, slow_fruit_server.url)
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


def test_the_phone_drawer_takes_the_focus_when_it_opens_and_gives_it_back(browser, slow_fruit_server):
    page = open_page(browser, slow_fruit_server.url, viewport={"width": 375, "height": 740})
    toggle = page.get_by_role("button", name="Conversations")
    toggle.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("link", name="New chat")).to_be_focused()
    page.keyboard.press("Escape")
    expect(toggle).to_be_focused()
    expect(page.locator("#sidebar")).to_be_hidden()
    close_page(page)
