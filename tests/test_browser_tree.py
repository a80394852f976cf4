"""Conversations as trees in Chromium: a reply that streams on a branch the user left, fork, instructions,
two tabs on two branches, search opening a branch, and all of it with the keyboard alone.

The model is a FAKE (NumberingFakeLLM below, or support's FakeModelServer where what the model receives is
checked): what is tested is the tree, not what a model says.
"""

import re
import threading

import pytest
from playwright.sync_api import expect

from support import FakeLLM, FakeModelServer, LiveServer, close_page, open_page, stored_conversations

pytestmark = pytest.mark.browser

HELD = "held until released"  # a message with these words gets a reply that waits for the test halfway


class NumberingFakeLLM(FakeLLM):
    """A FAKE model: reply n is "Answer n to <the user's text>." at once, except that a message saying HELD is
    answered "Written before the wait," then, once the test sets `release`, "and after it."; a title is "Chat
    about" and the user's first two words. It keeps every reply's messages in `requests`."""

    def __init__(self):
        super().__init__()
        self.replies, self.requests, self.release = 0, [], threading.Event()

    def stream(self, messages, model=None, **params):
        """Answer the last user turn, numbered; hold a HELD one halfway until release."""
        self.requests.append(messages)
        self.replies += 1
        text = messages[-1]["content"]
        if HELD in text:
            yield "Written before the wait,"
            self.release.wait(30)
            yield " and after it."
            return
        yield from re.findall(r"\S+\s*", f"Answer {self.replies} to {text}.")

    def complete(self, messages, model=None, **params):
        """A title made of the exchange's first two words."""
        return "Chat about " + " ".join(messages[0]["content"].split()[:2])


@pytest.fixture
def tree_app(make_app):
    app = make_app()
    app.extensions["llm"] = NumberingFakeLLM()
    return app


@pytest.fixture
def server(tree_app):
    with LiveServer(tree_app) as server:
        yield server


@pytest.fixture
def page(browser, server):
    page = open_page(browser, server.url)
    yield page
    close_page(page)


def send(page, text):
    """Type text in the composer, press Enter, wait for the whole reply; return it."""
    replies = page.locator('[data-role="assistant"]')
    before = replies.count()
    composer = page.locator("#composer-text")
    composer.fill(text)
    composer.press("Enter")
    expect(replies).to_have_count(before + 1)
    expect(replies.last).to_have_attribute("data-status", "done")
    return replies.last


def user_texts(page):
    return page.locator('[data-role="user"] .bubble')


def titled(page):
    """Wait until the open conversation has its title (the source of a fork's "Fork of …")."""
    expect(page.locator("#chat-title")).to_have_text(re.compile("^Chat about"))


def edit(page, nth, text):
    """Edit the nth message of the user on screen with the mouse, send it, and wait for the new version."""
    page.locator('[data-role="user"]').nth(nth).get_by_role("link", name="Edit your message").click()
    page.get_by_label("Edit your message").fill(text)
    page.locator(".edit-form").get_by_role("button", name="Send").click()
    expect(user_texts(page).nth(nth)).to_have_text(text)


def test_a_reply_streaming_on_a_branch_left_goes_on_and_is_saved(browser, server, tree_app, page):
    llm = tree_app.extensions["llm"]
    send(page, "Say one")
    edit(page, 0, f"Say one, {HELD}")
    reply = page.locator('[data-role="assistant"]')
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(reply.locator(".content")).to_have_text("Written before the wait,")
    # The other version, while this one is held mid-reply.
    page.get_by_role("button", name="Previous version").click()
    expect(user_texts(page)).to_have_text(["Say one"])
    expect(page.locator(".version-count")).to_have_text("1 / 2")
    expect(reply).to_have_attribute("data-status", "done")
    expect(reply.locator(".content")).to_have_text("Answer 1 to Say one.")
    # Back: the reply is still being written, replayed so far, and goes on live.
    page.get_by_role("button", name="Next version").click()
    expect(user_texts(page)).to_have_text([f"Say one, {HELD}"])
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(reply.locator(".content")).to_have_text("Written before the wait,")
    llm.release.set()
    expect(reply).to_have_attribute("data-status", "done")
    expect(reply.locator(".content")).to_have_text("Written before the wait, and after it.")
    page.reload()
    expect(user_texts(page)).to_have_text([f"Say one, {HELD}"])
    expect(reply.locator(".content")).to_have_text("Written before the wait, and after it.")
    [stored] = stored_conversations(tree_app)
    assert [message["status"] for message in stored["messages"]] == ["done"] * 4


def test_fork_opens_the_path_up_to_the_message_titled_after_its_source_until_its_own_exchange(page):
    send(page, "Say one")
    send(page, "Say two")
    titled(page)
    source_url = page.url
    page.locator('[data-role="assistant"]').first.get_by_role("button", name="Fork from here").click()
    expect(page).not_to_have_url(source_url)
    expect(user_texts(page)).to_have_text(["Say one"])
    expect(page.locator('[data-role="assistant"] .content')).to_have_text(["Answer 1 to Say one."])
    expect(page.locator("#chat-title")).to_have_text("Fork of Chat about Say one")
    entries = page.locator("#sidebar [data-conversation-id] .entry-link")
    expect(entries).to_have_text(["Fork of Chat about Say one", "Chat about Say one"])
    expect(entries.first).to_have_attribute("aria-current", "page")
    # Its first own exchange gives it its own title, in the heading and the sidebar.
    send(page, "Fork question")
    expect(page.locator("#chat-title")).to_have_text("Chat about Fork question")
    expect(entries).to_have_text(["Chat about Fork question", "Chat about Say one"])


@pytest.fixture
def model_server():
    """The FAKE model server, which keeps every request's body."""
    with FakeModelServer(pieces=["A fake ", "reply."], interval=0, title="Pirate talk") as model:
        yield model


def test_instructions_set_in_the_menu_reach_the_model_as_its_system_prompt(browser, make_app, model_server):
    app = make_app(
        LLM_BACKEND="huggingface",
        HF_BASE_URL=model_server.url,
        HF_TOKEN="hf_test",
        CHATBOT_MODELS=["fake-model", "fake/gemma-like"],
    )
    with LiveServer(app) as server:
        page = open_page(browser, server.url)
        send(page, "Hello")
        page.locator("#conversation-menu summary").click()
        page.get_by_role("link", name="Instructions").click()
        page.get_by_label("Instructions").fill("Answer like a pirate.")
        page.get_by_role("button", name="Save instructions").click()
        expect(page.locator("details.instructions")).to_contain_text("Answer like a pirate.")
        send(page, "Second question")
        replies = [body for body in model_server.bodies if body.get("max_tokens", 1024) > 30]
        assert replies[-1]["model"] == "fake-model"
        assert replies[-1]["messages"][0]["role"] == "system"
        assert replies[-1]["messages"][0]["content"].endswith("Answer like a pirate.")
        # A Gemma model has no system role: the instructions open the first user turn instead.
        page.get_by_label("Model").select_option("fake/gemma-like")
        send(page, "Third question")
        replies = [body for body in model_server.bodies if body.get("max_tokens", 1024) > 30]
        assert replies[-1]["model"] == "fake/gemma-like"
        assert [turn["role"] for turn in replies[-1]["messages"]] == ["user", "assistant"] * 2 + ["user"]
        assert replies[-1]["messages"][0]["content"].startswith("Answer like a pirate.\n\nHello")
        close_page(page)


def tab_to(page, selector, backwards=False, presses=80):
    """Press Tab (Shift+Tab backwards) until the focused element matches selector."""
    key = "Shift+Tab" if backwards else "Tab"
    for _ in range(presses):
        if page.evaluate("selector => document.activeElement.matches(selector)", selector):
            return
        page.keyboard.press(key)
    raise AssertionError(f"{key} never reached {selector}")


def press(page, selector, backwards=False):
    """Tab to selector, then press Enter."""
    tab_to(page, selector, backwards)
    page.keyboard.press("Enter")


def test_keyboard_alone_edits_switches_versions_forks_and_sets_instructions(tree_app, page):
    composer = page.locator("#composer-text")
    expect(composer).to_be_focused()
    for text in ("Say one", "Say two"):
        page.keyboard.type(text)
        page.keyboard.press("Enter")
        expect(page.locator('[data-role="assistant"]').last).to_have_attribute("data-status", "done")
        expect(composer).to_be_focused()
    first_user = page.locator('[data-role="user"]').first.get_attribute("id")
    press(page, f"#{first_user} a.edit", backwards=True)
    editor = page.get_by_label("Edit your message")
    expect(editor).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type("Say one again")
    press(page, ".edit-form button.send")
    expect(user_texts(page)).to_have_text(["Say one again"])
    expect(page.locator('[data-role="assistant"]')).to_have_attribute("data-status", "done")
    # The versions, with their buttons; each change is said in the page's live region.
    announcer = page.locator("#announcer")
    expect(announcer).to_have_text("")
    press(page, "button.version-previous", backwards=True)
    expect(user_texts(page)).to_have_text(["Say one", "Say two"])
    expect(announcer).to_have_text("Version 1 of 2")
    expect(page.get_by_role("button", name="Next version")).to_be_focused()  # Previous is disabled now
    page.keyboard.press("Enter")
    expect(user_texts(page)).to_have_text(["Say one again"])
    expect(announcer).to_have_text("Version 2 of 2")
    expect(page.get_by_role("button", name="Previous version")).to_be_focused()
    # Fork from the reply shown.
    titled(page)
    press(page, '[data-role="assistant"] .fork-button')
    expect(page.locator("#chat-title")).to_have_text("Fork of Chat about Say one")
    expect(user_texts(page)).to_have_text(["Say one again"])
    # Instructions, through the conversation's menu.
    press(page, "#conversation-menu summary", backwards=True)
    press(page, '#conversation-menu a[href$="/instructions"]')
    expect(page.get_by_label("Instructions")).to_be_visible()
    tab_to(page, "#instructions-text")
    page.keyboard.type("Be brief.")
    press(page, '.instructions-form button[type="submit"]')
    expect(page.locator("details.instructions")).to_contain_text("Be brief.")
    expect(composer).to_be_focused()
    page.keyboard.type("Say three")
    page.keyboard.press("Enter")
    expect(user_texts(page)).to_have_text(["Say one again", "Say three"])
    expect(page.locator('[data-role="assistant"]').last).to_have_attribute("data-status", "done")
    assert tree_app.extensions["llm"].requests[-1][0]["content"].endswith("Be brief.")


def test_two_tabs_on_two_branches_each_add_to_their_own(browser, server, tree_app, page):
    send(page, "Say one")
    edit(page, 0, "Say one again")
    expect(page.locator('[data-role="assistant"]')).to_have_attribute("data-status", "done")
    other = page.context.new_page()
    other.goto(page.url)
    expect(user_texts(other)).to_have_text(["Say one again"])
    page.get_by_role("button", name="Previous version").click()  # this tab goes back; the other stays
    expect(user_texts(page)).to_have_text(["Say one"])
    send(other, "On the second branch")
    send(page, "On the first branch")
    expect(user_texts(page)).to_have_text(["Say one", "On the first branch"])
    expect(user_texts(other)).to_have_text(["Say one again", "On the second branch"])
    [stored] = stored_conversations(tree_app)
    by_text = {message["content"]: message for message in stored["messages"] if message["role"] == "user"}
    replies = {message["parent"]: message["id"] for message in stored["messages"] if message["role"] == "assistant"}
    assert by_text["On the first branch"]["parent"] == replies[by_text["Say one"]["id"]]
    assert by_text["On the second branch"]["parent"] == replies[by_text["Say one again"]["id"]]
    other.reload()  # the last message sent is the stored path
    expect(user_texts(other)).to_have_text(["Say one", "On the first branch"])
    other.close()


def test_search_finds_a_message_on_a_branch_not_shown_and_opens_that_branch(page):
    send(page, "Tell me about aardvarks")
    edit(page, 0, "Tell me about zebras")
    expect(page.locator('[data-role="assistant"]')).to_have_attribute("data-status", "done")
    page.get_by_label("Search conversations").type("aardvarks")
    expect(page.locator(".search-results .group-label")).to_have_text("1 result for “aardvarks”")
    expect(page.locator("#conversation-list .snippet")).to_contain_text("aardvarks")
    page.locator("#conversation-list .entry-link").click()
    expect(user_texts(page)).to_have_text(["Tell me about aardvarks"])
    expect(page.locator(".version-count")).to_have_text("1 / 2")
    assert "?m=" in page.url


def test_without_javascript_edit_regenerate_switch_instructions_and_fork_are_plain_forms(browser, server, tree_app):
    page = open_page(browser, server.url, java_script_enabled=False)
    page.get_by_label("Message", exact=True).fill("Say one")
    page.locator("#composer").get_by_role("button", name="Send").click()  # the server answers after the whole reply
    expect(page.locator('[data-role="assistant"] .content')).to_have_text(["Answer 1 to Say one."])
    page.get_by_role("link", name="Edit your message").click()  # a page of its own
    page.get_by_label("Edit your message").fill("Say one again")
    page.locator(".edit-form").get_by_role("button", name="Send").click()
    expect(user_texts(page)).to_have_text(["Say one again"])
    expect(page.locator('[data-role="assistant"] .content')).to_have_text(["Answer 2 to Say one again."])
    page.get_by_role("button", name="Regenerate").click()
    expect(page.locator('[data-role="assistant"] .content')).to_have_text(["Answer 3 to Say one again."])
    expect(page.locator(".version-count")).to_have_text(["2 / 2", "2 / 2"])  # the message's and the reply's
    page.locator('[data-role="assistant"]').get_by_role("button", name="Previous version").click()
    expect(page.locator('[data-role="assistant"] .content')).to_have_text(["Answer 2 to Say one again."])
    page.locator('[data-role="user"]').get_by_role("button", name="Previous version").click()
    expect(user_texts(page)).to_have_text(["Say one"])
    page.locator("#conversation-menu summary").click()  # a <details>: it opens without scripts
    page.get_by_role("link", name="Instructions").click()
    page.get_by_label("Instructions").fill("Be brief.")
    page.get_by_role("button", name="Save instructions").click()
    expect(page.locator("details.instructions")).to_contain_text("Be brief.")
    page.get_by_label("Message", exact=True).fill("Say two")
    page.locator("#composer").get_by_role("button", name="Send").click()
    expect(user_texts(page)).to_have_text(["Say one", "Say two"])
    assert tree_app.extensions["llm"].requests[-1][0]["content"].endswith("Be brief.")
    page.locator('[data-role="assistant"]').first.get_by_role("button", name="Fork from here").click()
    expect(page.locator("#chat-title")).to_have_text("Fork of Chat about Say one")
    expect(user_texts(page)).to_have_text(["Say one"])
    close_page(page)


def test_a_version_switch_on_a_reply_still_streaming_swaps_the_pane_and_leaves_it_working(tree_app, page):
    # The version forms sit inside the streaming reply's <article hx-swap="outerHTML">: they must not inherit it.
    llm = tree_app.extensions["llm"]
    send(page, "Another conversation")
    page.get_by_role("link", name="New chat").click()
    expect(page.locator(".welcome")).to_be_visible()
    llm.release.set()  # the first reply to the HELD message at once, the regenerated one held halfway
    send(page, f"Say one, {HELD}")
    llm.release.clear()
    page.get_by_role("button", name="Regenerate").click()
    reply = page.locator('[data-role="assistant"]')
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(reply.locator(".content")).to_have_text("Written before the wait,")
    reply.get_by_role("button", name="Previous version").click()
    expect(reply.locator(".content")).to_have_text("Written before the wait, and after it.")
    expect(reply.locator(".version-count")).to_have_text("1 / 2")
    expect(page.locator("#chat")).to_have_count(1)  # swapped inside, not replaced by the pane's contents
    # Another switch, back to the reply being written, still swaps the pane, and it goes on live there.
    reply.get_by_role("button", name="Next version").click()
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(reply.locator(".version-count")).to_have_text("2 / 2")
    reply.get_by_role("button", name="Stop generating").click()
    expect(reply).to_have_attribute("data-status", "stopped")
    expect(page.locator("#chat")).to_have_count(1)
    llm.release.set()
    # The sidebar still opens conversations in the pane.
    page.locator("#conversation-list .entry-link", has_text="Another").click()
    expect(user_texts(page)).to_have_text(["Another conversation"])
    page.locator("#conversation-list .entry-link", has_text="Say one").click()
    expect(user_texts(page)).to_have_text([f"Say one, {HELD}"])
    expect(page.locator('[data-role="assistant"] .version-count')).to_have_text("2 / 2")
