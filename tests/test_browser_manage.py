"""Every management control in Chromium, as a user would use it; accessibility with axe-core."""

import json
import re

import pytest
from playwright.sync_api import expect

from support import LiveServer, axe_violations, close_page, open_page

pytestmark = [pytest.mark.browser, pytest.mark.model]


@pytest.fixture
def live_app(make_app):
    with LiveServer(make_app(MAX_TOKENS=48)) as server:
        yield server


@pytest.fixture
def page(browser, live_app):
    page = open_page(browser, live_app.url, permissions=["clipboard-read", "clipboard-write"])
    yield page
    close_page(page)


def send(page, text):
    """Type a message, press Enter, and wait for the whole reply."""
    replies = page.locator('[data-role="assistant"]')
    before = replies.count()
    composer = page.locator('textarea[name="text"]')
    composer.fill(text)
    composer.press("Enter")
    expect(replies).to_have_count(before + 1)
    reply = replies.last
    expect(reply).to_have_attribute("data-status", "done", timeout=60_000)
    return reply


def entries(page):
    return page.locator("#sidebar [data-conversation-id]")


def test_rename_inline_with_the_keyboard_and_cancel_with_escape(page):
    send(page, "Hello")
    entry = entries(page).first
    expect(entry.locator(".entry-link")).not_to_have_text("Untitled chat", timeout=30_000)
    entry.get_by_role("link", name="Rename").click()
    title = page.get_by_label("New title")
    expect(title).to_be_focused()
    title.fill("Holiday plans")
    title.press("Enter")
    expect(entries(page).first.locator(".entry-link")).to_have_text("Holiday plans")

    entries(page).first.get_by_role("link", name="Rename").click()
    page.get_by_label("New title").fill("Something else")
    page.get_by_label("New title").press("Escape")
    expect(entries(page).first.locator(".entry-link")).to_have_text("Holiday plans")
    page.reload()
    expect(entries(page).first.locator(".entry-link")).to_have_text("Holiday plans")


def test_delete_asks_then_removes_the_conversation_and_clears_the_pane(page):
    send(page, "Delete me later")
    page.once("dialog", lambda dialog: dialog.dismiss())
    entries(page).first.get_by_role("link", name="Delete").click()
    expect(entries(page)).to_have_count(1)

    page.once("dialog", lambda dialog: dialog.accept())
    entries(page).first.get_by_role("link", name="Delete").click()
    expect(entries(page)).to_have_count(0)
    expect(page.get_by_text("How can I help?")).to_be_visible()
    assert page.url.endswith("/new")


def test_search_filters_as_you_type_and_marks_the_words(page):
    send(page, "Bananas are yellow")
    page.get_by_role("link", name="New chat", exact=True).click()
    expect(page.locator('[data-role="user"]')).to_have_count(0)  # the new chat's composer is in place
    send(page, "Cherries are red")
    expect(entries(page)).to_have_count(2)
    expect(entries(page).locator(".entry-link", has_text="Untitled chat")).to_have_count(0, timeout=30_000)
    page.get_by_label("Search conversations").type("banan")
    expect(entries(page)).to_have_count(1)
    expect(page.locator("#conversation-list mark").first).to_have_text("Banan", ignore_case=True)
    page.get_by_label("Search conversations").fill("")
    expect(entries(page)).to_have_count(2)


def test_stop_keeps_what_was_generated(browser, make_app):
    with LiveServer(make_app(MAX_TOKENS=1000)) as server:
        page = open_page(browser, server.url)
        page.locator('textarea[name="text"]').fill("Write a very long story about a dragon and a knight.")
        page.locator('textarea[name="text"]').press("Enter")
        expect(page.locator('[data-status="streaming"] .content')).not_to_be_empty()
        page.get_by_role("button", name="Stop generating").click()
        reply = page.locator('[data-role="assistant"]')
        expect(reply).to_have_attribute("data-status", "stopped")
        expect(reply.get_by_text("Stopped.")).to_be_visible()
        expect(reply.locator(".content")).not_to_be_empty()
        close_page(page)


def test_regenerate_and_edit_the_last_message(page):
    send(page, "Waht is the sun?")
    with page.expect_response(lambda response: response.url.endswith("/regenerate")):
        page.get_by_role("button", name="Regenerate").click()
    reply = page.locator('[data-role="assistant"]')
    expect(reply).to_have_attribute("data-status", "done", timeout=60_000)
    expect(reply).to_have_count(1)  # the new version replaces the old one on screen

    page.get_by_role("link", name="Edit your message").click()
    editor = page.get_by_label("Edit your message")
    expect(editor).to_have_value("Waht is the sun?")
    editor.fill("What is the sun?")
    page.locator(".edit-form").get_by_role("button", name="Send").click()
    expect(page.locator('[data-role="user"] .bubble')).to_have_text("What is the sun?")
    expect(page.locator('[data-role="assistant"]')).to_have_count(1)
    expect(page.locator('[data-role="assistant"]')).to_have_attribute("data-status", "done", timeout=60_000)


def test_copy_buttons_put_text_on_the_clipboard(page):
    reply = send(page, "Show a Python hello world in a fenced code block.")
    reply.get_by_role("button", name="Copy reply").click()
    expect(reply.get_by_role("button", name="Copied")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.strip() and copied.strip() in reply.locator(".content").inner_text()


def test_code_blocks_show_their_language_and_copy_their_code(page):
    reply = send(page, "Hi")
    # The model decides whether it writes code: render a known reply through the same path instead.
    page.evaluate("""() => {
        const content = document.querySelector('[data-role="assistant"] .content');
        content.innerHTML = '<div class="language-python highlight">'
            + '<pre><span></span><code>print(1)\\n</code></pre></div>';
        htmx.process(content);
        htmx.trigger(content, 'htmx:load');
    }""")
    block = reply.locator(".highlight")
    expect(block.locator(".code-header")).to_contain_text("python")
    block.get_by_role("button", name="Copy code").click()
    assert page.evaluate("navigator.clipboard.readText()").strip() == "print(1)"


def test_export_links_download_markdown_and_json(page):
    send(page, "Export me")
    page.locator("#conversation-menu summary").click()  # the header's menu holds the exports
    with page.expect_download() as download:
        page.get_by_role("link", name="Export JSON").click()
    document = json.loads(open(download.value.path()).read())
    assert document["messages"][0]["content"] == "Export me"
    expect(page.locator("#conversation-menu")).not_to_have_attribute("open", "")  # an item chosen closes the menu
    page.locator("#conversation-menu summary").click()
    with page.expect_download() as download:
        page.get_by_role("link", name="Export Markdown").click()
    assert "Export me" in open(download.value.path()).read()


def test_phone_width_collapses_the_sidebar_and_nothing_overflows(browser, live_app):
    page = open_page(browser, live_app.url, viewport={"width": 375, "height": 740})
    send(page, "Hello from a phone with a rather long message that must wrap nicely")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    sidebar = page.locator("#sidebar")
    expect(sidebar).not_to_be_visible()
    toggle = page.get_by_role("button", name="Conversations")
    toggle.click()
    expect(sidebar).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("Escape")
    expect(sidebar).not_to_be_visible()
    expect(page.locator('textarea[name="text"]')).to_be_visible()
    close_page(page)


def luminance(css_color):
    """The relative luminance (0 black to 1 white) of a computed `rgb(...)` colour."""
    red, green, blue = (int(part) / 255 for part in re.findall(r"\d+", css_color)[:3])
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_dark_mode_follows_the_system(browser, live_app, scheme):
    page = open_page(browser, live_app.url, color_scheme=scheme)
    background, text = page.evaluate(
        "[getComputedStyle(document.body).backgroundColor, getComputedStyle(document.body).color]"
    )
    if scheme == "dark":
        assert luminance(background) < 0.2 < 0.7 < luminance(text)  # light text on a dark page
    else:
        assert luminance(text) < 0.2 < 0.8 < luminance(background)  # dark text on a light page
    close_page(page)


def test_keyboard_alone_reaches_and_sends_the_composer(page):
    composer_border = "getComputedStyle(document.querySelector('textarea[name=text]').closest('form')).borderColor"
    # Start in the sidebar's search field (the composer has the focus when a page opens).
    page.get_by_label("Search conversations").focus()
    unfocused = page.evaluate(composer_border)
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.name") == "text":
            break
    assert page.evaluate("document.activeElement.name") == "text"
    # Keyboard users see where they are: the composer's frame changes colour when it has the focus.
    assert page.evaluate(composer_border) != unfocused
    page.keyboard.type("Sent with the keyboard")
    page.keyboard.press("Enter")
    expect(page.locator('[data-role="user"] .bubble')).to_have_text("Sent with the keyboard")
    expect(page.locator('[data-role="assistant"]')).to_have_attribute("data-status", "done", timeout=60_000)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_violations(browser, live_app, scheme):
    page = open_page(browser, live_app.url, color_scheme=scheme)
    assert axe_violations(page) == []  # the empty chat
    send(page, "Hello")
    expect(entries(page).first.locator(".entry-link")).not_to_have_text("Untitled chat", timeout=30_000)
    assert axe_violations(page) == []  # a conversation, the sidebar with an entry
    page.goto(live_app.url + "/auth/login")
    assert axe_violations(page) == []
    close_page(page)


def test_every_message_keeps_edit_and_regenerate(page):
    send(page, "First question")
    send(page, "Second question")
    expect(page.get_by_role("link", name="Edit your message")).to_have_count(2)
    expect(page.get_by_role("button", name="Regenerate")).to_have_count(2)


def test_edit_the_second_of_three_then_go_back_with_previous_version_and_reload(page):
    send(page, "Say one")
    send(page, "Say two")
    send(page, "Say three")
    old_reply = page.locator('[data-role="assistant"]').nth(1)
    old_text = old_reply.locator(".content").inner_text()
    page.locator('[data-role="user"]').nth(1).get_by_role("link", name="Edit your message").click()
    page.get_by_label("Edit your message").fill("Say two, please")
    page.locator(".edit-form").get_by_role("button", name="Send").click()
    replies = page.locator('[data-role="assistant"]')
    expect(replies).to_have_count(2)
    expect(replies.last).to_have_attribute("data-status", "done", timeout=60_000)
    expect(page.get_by_text("2 / 2")).to_be_visible()
    page.get_by_role("button", name="Previous version").click()
    expect(page.get_by_text("1 / 2")).to_be_visible()
    expect(page.locator('[data-role="user"] .bubble')).to_have_text(["Say one", "Say two", "Say three"])
    expect(page.locator('[data-role="assistant"]').nth(1).locator(".content")).to_have_text(old_text)
    page.reload()
    expect(page.locator('[data-role="user"] .bubble')).to_have_text(["Say one", "Say two", "Say three"])
    expect(page.get_by_text("1 / 2")).to_be_visible()
