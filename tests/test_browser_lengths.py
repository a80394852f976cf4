"""The composer's maxlength and the server's limit agree in Chromium: a message the browser let through at its
limit, line breaks and all (posted as CRLF), is sent, not refused as too long."""

import pytest
from playwright.sync_api import expect

from support import FakeLLM, close_page, open_as_guest, seeded_guest

pytestmark = pytest.mark.browser


@pytest.fixture
def guest(tmp_path):
    """A guest with one seeded conversation; replies from a FAKE model (the model is not the point)."""
    with seeded_guest(tmp_path, FakeLLM(), 1, messages=2) as guest:
        yield guest


def test_a_message_cut_at_maxlength_by_the_browser_is_accepted(browser, guest):
    _, _, entries = guest
    page = open_as_guest(browser, guest, f"/c/{entries[0]['id']}")
    composer = page.locator("#composer-text")
    limit = int(composer.get_attribute("maxlength"))
    composer.focus()
    page.keyboard.insert_text("abcd\n" * (limit // 5) + "😀" * 10)  # more than fits: the browser cuts it
    assert composer.evaluate("element => element.value.length") == limit
    page.locator("#composer button.send").click()
    expect(page.locator('[data-role="user"]')).to_have_count(2)
    expect(page.locator("#composer-error")).to_be_empty()
    expect(page.locator('[data-role="assistant"]').last).to_have_attribute("data-status", "done")
    close_page(page)
