"""Sharing in Chromium: make a link from the conversation's menu, read it in a fresh browser, revoke it,
and read it with JavaScript off; axe-core on every page of it. Conversations are seeded (no model runs)."""

import re

import pytest
from playwright.sync_api import expect

from support import FakeLLM, axe_violations, close_page, open_as_guest, open_page, seeded_guest

pytestmark = pytest.mark.browser


@pytest.fixture
def owner(tmp_path):
    """(server url, the owner's session cookie, their conversations' index entries, newest first)."""
    with seeded_guest(tmp_path, FakeLLM(), 2, messages=4) as guest:
        yield guest


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_share_read_in_a_fresh_browser_then_revoke(browser, owner, scheme):
    url, _, entries = owner
    page = open_as_guest(browser, owner, color_scheme=scheme)
    page.locator("#conversation-menu summary").click()
    page.locator("#conversation-menu").get_by_role("link", name="Share").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Share “{entries[0]['title']}”")
    assert axe_violations(page) == []
    page.get_by_role("button", name="Create a share link").click()
    link = page.locator(".share-url").first.input_value()
    assert re.fullmatch(re.escape(url) + r"/s/[A-Za-z0-9_-]{22}", link)
    assert entries[0]["id"] not in link
    assert axe_violations(page) == []

    reader = open_page(browser, link, color_scheme=scheme)  # a fresh context: no session, nothing shared
    expect(reader.get_by_role("heading", level=1)).to_have_text(entries[0]["title"])
    expect(reader.locator('[data-role="assistant"]').last).to_have_text("message 3 of conversation 1")
    expect(reader.locator("#sidebar, #composer, script")).to_have_count(0)
    assert reader.evaluate("typeof htmx") == "undefined"  # no htmx, no script at all
    assert axe_violations(reader) == []

    page.goto(url + "/shares")
    assert axe_violations(page) == []
    page.get_by_role("button", name=re.compile("^Revoke")).click()
    expect(page.get_by_text("You have not shared any conversation")).to_be_visible()
    assert reader.reload().status == 404
    expect(reader.get_by_text("This page or conversation does not exist.")).to_be_visible()
    assert [error for error in reader.errors if "404" not in error] == []  # the 404 is what is expected
    reader.errors.clear()
    close_page(reader)
    close_page(page)


def test_the_share_page_and_continue_work_without_javascript(browser, owner):
    url, _, entries = owner
    page = open_as_guest(browser, owner, java_script_enabled=False)
    page.goto(f"{url}/c/{entries[1]['id']}/share")
    page.get_by_role("button", name="Create a share link").click()
    link = page.locator(".share-url").first.input_value()
    expect(page.get_by_role("button", name=re.compile("^Copy"))).to_be_hidden()  # the clipboard needs scripts

    visitor = open_page(browser, link, java_script_enabled=False)
    expect(visitor.get_by_role("heading", level=1)).to_have_text(entries[1]["title"])
    expect(visitor.locator('[data-role="user"]').first).to_have_text("message 0 of conversation 0")
    visitor.get_by_role("button", name="Continue this chat").click()
    expect(visitor).to_have_url(re.compile(r"/c/[A-Za-z0-9_-]{16}$"))
    assert entries[1]["id"] not in visitor.url
    expect(visitor.locator('[data-role="assistant"]').last).to_contain_text("message 3 of conversation 0")
    expect(visitor.locator("#sidebar [data-conversation-id]")).to_have_count(1)  # the visitor's own copy
    expect(visitor.locator('textarea[name="text"]')).to_be_visible()
    close_page(visitor)
    close_page(page)


def test_the_share_page_fits_a_phone(browser, owner):
    url, _, entries = owner
    page = open_as_guest(browser, owner, viewport={"width": 375, "height": 667})
    page.goto(f"{url}/c/{entries[0]['id']}/share")
    page.get_by_role("button", name="Create a share link").click()
    link = page.locator(".share-url").first.input_value()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    reader = open_page(browser, link, viewport={"width": 375, "height": 667})
    assert reader.evaluate("document.documentElement.scrollWidth") <= 375
    close_page(reader)
    close_page(page)
