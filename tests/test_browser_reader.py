"""The reader in Chromium: scrolling that follows a reply only at the end, the conversation menu (an item chosen
closes it), and the phone layout (375 px) with its menu and drawer, with and without JavaScript.

Replies come from a FAKE model (support's FakeSlowLLM) that writes numbered lines slowly: what is tested is
the page around the reply, not the reply.
"""

import pytest
from playwright.sync_api import expect

from support import FakeSlowLLM, axe_violations, close_page, open_as_guest, seeded_guest

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 667}


@pytest.fixture
def reader(tmp_path):
    """(server url, session cookie of a guest with two long conversations, their index entries)."""
    model = FakeSlowLLM([f"Line {number} of a long reply.\n\n" for number in range(80)], interval=0.05)
    with seeded_guest(tmp_path, model, 2, messages=40) as guest:
        yield guest


def distance_from_end(page):
    return page.evaluate(
        "(() => { var m = document.getElementById('messages'); "
        "return m.scrollHeight - m.scrollTop - m.clientHeight; })()"
    )


def test_scrolling_up_during_a_reply_keeps_the_place_and_offers_jump_to_latest(browser, reader):
    page = open_as_guest(browser, reader)
    jump = page.get_by_role("button", name="Jump to latest")
    assert distance_from_end(page) < 2  # a conversation opens at its end
    composer = page.locator('textarea[name="text"]')
    composer.fill("Write a long reply")
    composer.press("Enter")
    streaming = page.locator('[data-role="assistant"][data-status="streaming"]')
    expect(streaming).to_contain_text("Line 3 ")
    assert distance_from_end(page) < 30  # followed while at the end
    expect(jump).to_be_hidden()

    page.locator("#messages").hover()
    page.mouse.wheel(0, -600)  # the reader scrolls up to read
    expect(jump).to_be_visible()
    place = page.evaluate("document.getElementById('messages').scrollTop")
    lines = streaming.inner_text().count("Line ")
    expect(streaming).to_contain_text(f"Line {lines + 5} ")  # more of the reply arrives ...
    assert page.evaluate("document.getElementById('messages').scrollTop") == place  # ... and nothing moves
    expect(jump).to_be_visible()

    jump.focus()
    page.keyboard.press("Enter")  # the button works from the keyboard
    expect(jump).to_be_hidden()
    assert distance_from_end(page) < 30
    expect(page.locator("#messages")).to_be_focused()
    expect(streaming).to_contain_text(f"Line {lines + 10} ")
    assert distance_from_end(page) < 30  # following again
    expect(page.locator('[data-role="assistant"]').last).to_have_attribute("data-status", "done", timeout=30_000)
    assert distance_from_end(page) < 30
    close_page(page)


def test_opening_a_conversation_and_switching_back_start_at_its_end(browser, reader):
    _, _, entries = reader
    page = open_as_guest(browser, reader)
    assert distance_from_end(page) < 2
    page.evaluate("document.getElementById('messages').scrollTop = 0")
    page.locator(f'[data-conversation-id="{entries[1]["id"]}"] .entry-link').click()
    expect(page.locator("#chat-title")).to_have_text(entries[1]["title"])
    assert distance_from_end(page) < 2
    page.go_back()
    expect(page.locator("#chat-title")).to_have_text(entries[0]["title"])
    page.wait_for_function(
        "(() => { var m = document.getElementById('messages'); "
        "return m.scrollHeight - m.scrollTop - m.clientHeight < 2; })()"
    )
    page.locator(f'[data-conversation-id="{entries[1]["id"]}"] .entry-link').click()
    expect(page.locator("#chat-title")).to_have_text(entries[1]["title"])
    assert distance_from_end(page) < 2
    close_page(page)


def test_a_sidebar_refresh_does_not_scroll_the_pane(browser, reader):
    page = open_as_guest(browser, reader)
    page.evaluate("document.getElementById('messages').scrollTop = 100")
    with page.expect_response(lambda response: "/sidebar/" in response.url):
        page.evaluate("htmx.ajax('GET', '/sidebar/', {target: '#conversation-list', swap: 'outerHTML'})")
    page.wait_for_function("!document.querySelector('.htmx-request, .htmx-settling')")
    assert page.evaluate("document.getElementById('messages').scrollTop") == 100
    close_page(page)


def test_the_phone_layout_does_not_shift_while_loading(browser, reader):
    page = open_as_guest(browser, reader, viewport=PHONE)
    page.wait_for_load_state("networkidle")
    shift = page.evaluate("""new Promise((resolve) => {
        var total = 0;
        new PerformanceObserver((list) => {
            list.getEntries().forEach((entry) => { if (!entry.hadRecentInput) total += entry.value; });
        }).observe({type: "layout-shift", buffered: true});
        setTimeout(() => resolve(total), 500);
    })""")
    assert shift == 0
    close_page(page)


def test_phone_header_menu_and_drawer(browser, reader):
    _, _, entries = reader
    page = open_as_guest(browser, reader, viewport=PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    title = page.locator("#chat-title")
    expect(title).to_have_text(entries[0]["title"])
    assert title.bounding_box()["width"] >= 200  # the title keeps most of the header
    assert page.evaluate(
        "(() => { var t = document.getElementById('chat-title'); return t.scrollWidth <= t.clientWidth; })()"
    )  # not cut at this length

    # The menu, from the keyboard: Enter opens it, its items are links, Escape closes it.
    summary = page.locator("#conversation-menu summary")
    summary.focus()
    page.keyboard.press("Enter")
    menu = page.locator("#conversation-menu .menu-items")
    expect(menu).to_be_visible()
    names = [link.inner_text() for link in menu.get_by_role("link").all()]
    assert names == ["Share", "Rename", "Instructions", "Export Markdown", "Export JSON", "Delete"]
    assert all(menu.get_by_role("link").nth(index).bounding_box()["x"] >= 0 for index in range(len(names)))
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(summary).to_be_focused()
    summary.click()
    expect(menu).to_be_visible()
    page.locator("#messages").click(position={"x": 20, "y": 100})  # a click elsewhere closes it
    expect(menu).to_be_hidden()
    assert axe_violations(page) == []

    # The drawer: a backdrop behind it, and a tap outside closes it.
    toggle = page.get_by_role("button", name="Conversations")
    sidebar, backdrop = page.locator("#sidebar"), page.locator(".drawer-backdrop")
    expect(sidebar).to_be_hidden()
    expect(backdrop).to_be_hidden()
    toggle.click()
    expect(sidebar).to_be_visible()
    expect(backdrop).to_be_visible()
    assert axe_violations(page) == []
    page.mouse.click(PHONE["width"] - 20, 400)
    expect(sidebar).to_be_hidden()
    expect(backdrop).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")

    # Rename from the menu: a page, and back to the conversation.
    summary.click()
    menu.get_by_role("link", name="Rename").click()
    page.get_by_label("New title").fill("Renamed from the menu")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#chat-title")).to_have_text("Renamed from the menu")
    close_page(page)


def test_the_menu_works_without_javascript(browser, reader):
    _, _, entries = reader
    page = open_as_guest(browser, reader, viewport=PHONE, java_script_enabled=False)
    expect(page.get_by_role("button", name="Conversations")).to_be_hidden()
    expect(page.locator("#sidebar")).to_be_visible()  # stacked above the chat instead of a drawer
    page.locator("#conversation-menu summary").click()
    page.locator("#conversation-menu").get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete").click()  # the confirmation page
    expect(page.locator(f'[data-conversation-id="{entries[0]["id"]}"]')).to_have_count(0)
    close_page(page)


def test_choosing_an_export_in_the_menu_closes_it(browser, reader):
    page = open_as_guest(browser, reader)
    page.get_by_title("Conversation actions").click()
    menu = page.locator("#conversation-menu")
    expect(menu).to_have_attribute("open", "")
    with page.expect_download():
        page.get_by_role("link", name="Export Markdown").click()
    expect(menu).not_to_have_attribute("open", "")
    close_page(page)
