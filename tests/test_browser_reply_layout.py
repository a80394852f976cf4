"""A streaming reply in Chromium is laid out as its final render will be (nothing jumps when it ends), and the
tab's title follows the conversation's.

The model is a FAKE (support's FakeSlowLLM) writing known Markdown slowly: the model's text is not under test.
"""

import pytest
from playwright.sync_api import expect

from support import SLOW_FRUIT_TITLE, close_page, open_page, send_message

pytestmark = pytest.mark.browser


# Records, in the page, the streaming reply's height the moment its final render arrives.
RECORD_HEIGHT_BEFORE_FINAL = """
document.addEventListener("htmx:sseBeforeMessage", function (event) {
  if (event.detail.type !== "final") return;
  var content = event.target.querySelector(".content");
  if (content) window.heightBeforeFinal = content.getBoundingClientRect().height;
});
"""


def test_the_streaming_reply_has_the_height_of_its_final_render_and_the_tab_its_title(browser, slow_fruit_server):
    page = open_page(browser, slow_fruit_server.url)
    page.add_init_script(RECORD_HEIGHT_BEFORE_FINAL)
    page.reload()
    reply = send_message(page)
    expect(reply).to_have_attribute("data-status", "done")
    final = reply.locator(".content").evaluate("content => content.getBoundingClientRect().height")
    # The code block was finished before the reply: it had its header already, so nothing moves at the end.
    assert abs(page.evaluate("window.heightBeforeFinal") - final) <= 1
    # The tab's title follows the conversation's: the first message, then the model's title.
    expect(page).to_have_title(f"{SLOW_FRUIT_TITLE} · Chatbot")
    page.get_by_role("link", name="New chat").click()
    expect(page).to_have_title("New chat · Chatbot")
    close_page(page)
