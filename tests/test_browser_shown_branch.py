"""In Chromium: Share takes the version on this tab's screen, after an htmx version switch and after another tab
switched the stored path to another version."""

import pytest
from playwright.sync_api import expect

from support import FakeLLM, close_page, open_as_guest, open_page, seeded_guest

pytestmark = pytest.mark.browser

PIN = "My bank PIN is 4821"


@pytest.fixture
def guest(tmp_path):
    """A guest with one seeded conversation (the model, a FAKE, answers the edit at once)."""
    with seeded_guest(tmp_path, FakeLLM(), 1, messages=2) as guest:
        yield guest


def test_share_publishes_the_version_this_tab_shows(browser, guest):
    url, _, entries = guest
    path = f"/c/{entries[0]['id']}"
    first = open_as_guest(browser, guest, path)
    question = first.locator('[data-role="user"]').first.get_attribute("id")[2:]
    assert first.request.post(f"{url}{path}/messages/{question}/edit", form={"text": PIN}).ok  # stored: the PIN
    first.reload()
    first.get_by_role("button", name="Previous version").click()  # htmx: this tab shows version 1
    expect(first.locator('[data-role="user"]').first).to_contain_text("message 0 of conversation 0")
    second = first.context.new_page()  # another tab presses › : the stored path is the PIN again
    second.goto(url + path)
    second.get_by_role("button", name="Next version").click()
    expect(second.locator('[data-role="user"]').first).to_contain_text(PIN)

    first.locator("#conversation-menu summary").click()
    first.locator("#conversation-menu").get_by_role("link", name="Share").click()
    first.get_by_role("button", name="Create a share link").click()
    reader = open_page(browser, first.locator(".share-url").first.input_value())
    expect(reader.locator('[data-role="user"]').first).to_contain_text("message 0 of conversation 0")
    expect(reader.get_by_text("4821")).to_have_count(0)
    close_page(reader)
    close_page(first)
