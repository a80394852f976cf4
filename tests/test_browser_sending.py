"""Sending from the composer in Chromium when things go wrong: a send that fails on the network keeps the text
and the files and says so; changes made while a send is in flight (only what was sent is cleared); a
conversation deleted in another tab; the composer's own checks on files (SVG, empty files, sizes, models shown
as unavailable). The model is a FAKE (FakeLLM under three names): what is tested is the page, not the reply."""

import contextlib
import re

import pytest
from playwright.sync_api import expect

from chatbot.llm import ModelStatus
from support import FakeLLM, LiveServer, build_app, close_page, open_page, stored_conversations
from support.files import png

pytestmark = pytest.mark.browser

SEEING, TEXT_ONLY, GONE = "seeing-model", "text-model", "gone-seeing-model"
POSTED = "Array.from(document.getElementById('composer-files').files, file => file.name)"
NOT_SENT = re.compile(r"Your message was not sent.*try again", re.IGNORECASE)


class ThreeModels(FakeLLM):
    """A FAKE model under three names: one that sees images, one that reads text only, and one that sees but the
    start-up check found unserved (the picker shows it as unavailable)."""

    def __init__(self):
        super().__init__()
        self.configured_models = [SEEING, TEXT_ONLY, GONE]
        self.models = list(self.configured_models)
        self.apply_check([ModelStatus(SEEING, True), ModelStatus(TEXT_ONLY, True), ModelStatus(GONE, False)])


@pytest.fixture
def server(tmp_path):
    app = build_app(tmp_path / "app", ThreeModels(), VISION_MODELS=[SEEING, GONE])
    with LiveServer(app) as server:
        yield server
    app.extensions["replies"].wait_for_jobs(60)


@pytest.fixture
def page(browser, server):
    page = open_page(browser, server.url)
    yield page
    close_page(page)


def as_file(name, data, mime="text/plain"):
    """A file as Playwright's set_input_files takes it."""
    return {"name": name, "mimeType": mime, "buffer": data}


@contextlib.contextmanager
def expected_error(page, text):
    """Wait for the console error the block causes (a failed request), and take it off page.errors."""
    with page.expect_console_message(lambda message: message.type == "error" and text in message.text) as logged:
        yield
    page.errors.remove(logged.value.text)


def forget_send_errors(page):
    """Take htmx's console errors for a request that got no answer (afterRequest, sendError) off page.errors."""
    logged = [error for error in page.errors if error.startswith(("htmx:afterRequest", "htmx:sendError"))]
    assert logged, "htmx logged no failed request"
    for error in logged:
        page.errors.remove(error)


def previews(page):
    return page.locator("#composer-previews .preview-name")


def sent_attachments(server):
    """The text and file names of the stored user messages."""
    (conversation,) = stored_conversations(server.app)
    return [
        (message["content"], [file["name"] for file in message.get("attachments") or []])
        for message in conversation["messages"]
        if message["role"] == "user"
    ]


def hold_posts(page):
    """Hold the page's POSTs until the test lets them go: returns the list of held routes."""
    held = []
    page.route("**/*", lambda route: held.append(route) if route.request.method == "POST" else route.fallback())
    return held


def test_a_send_that_fails_on_the_network_keeps_the_text_and_the_files_and_says_it_was_not_sent(page, server):
    text = page.locator("#composer-text")
    page.route("**/new", lambda route: route.abort("connectionreset"))
    page.locator("#composer-files").set_input_files([as_file("notes.txt", b"my notes")])
    text.fill("A long message I typed carefully")
    with expected_error(page, "ERR_CONNECTION_RESET"):
        text.press("Enter")
    expect(page.locator("#composer-error")).to_have_text(NOT_SENT)
    expect(text).to_have_value("A long message I typed carefully")
    expect(previews(page)).to_have_text(["notes.txt"])
    assert page.evaluate(POSTED) == ["notes.txt"]
    expect(page.locator("#messages .welcome")).to_be_visible()
    forget_send_errors(page)

    page.unroute("**/new")  # back online: the same message goes, and only then is the composer cleared
    text.press("Enter")
    expect(page.locator('[data-role="assistant"]')).to_have_attribute("data-status", "done")
    expect(text).to_have_value("")
    expect(previews(page)).to_have_count(0)
    expect(page.locator("#composer-error")).to_have_text("")

    # In a conversation, offline.
    page.context.set_offline(True)
    page.locator("#composer-files").set_input_files([as_file("report.txt", b"data")])
    text.fill("Second message, typed while offline")
    with expected_error(page, "ERR_INTERNET_DISCONNECTED"):
        text.press("Enter")
    expect(page.locator("#composer-error")).to_have_text(NOT_SENT)
    expect(text).to_have_value("Second message, typed while offline")
    expect(previews(page)).to_have_text(["report.txt"])
    expect(page.locator('[data-role="user"]')).to_have_count(1)
    forget_send_errors(page)
    page.context.set_offline(False)
    page.get_by_role("button", name="Send").click()
    expect(page.locator('[data-role="user"]')).to_have_count(2)
    expect(text).to_have_value("")
    assert sent_attachments(server) == [
        ("A long message I typed carefully", ["notes.txt"]),
        ("Second message, typed while offline", ["report.txt"]),
    ]


def test_while_a_send_is_in_flight_its_files_stay_as_sent_and_what_is_added_meanwhile_stays(page, server):
    text, files = page.locator("#composer-text"), page.locator("#composer-files")
    for first, second in (("First message", "Second message"), ("Third message", "Fourth message")):
        held = hold_posts(page)
        files.set_input_files([as_file(f"{first}.txt", b"sent")])
        text.fill(first)
        text.press("Enter")
        page.wait_for_function("() => document.getElementById('composer').classList.contains('htmx-request')")
        # What is being sent cannot be removed; files and text can be added for the next message.
        expect(page.get_by_role("button", name=f"Remove {first}.txt")).to_be_disabled()
        files.set_input_files([as_file(f"{second}.txt", b"next")])
        text.fill(second)
        expect(previews(page)).to_have_text([f"{first}.txt", f"{second}.txt"])
        page.unroute("**/*")
        for route in held:
            route.fallback()
        expect(page.locator('[data-role="user"] .bubble').last).to_contain_text(first)
        expect(page.locator('[data-role="assistant"]').last).to_have_attribute("data-status", "done")
        # Only what was sent is cleared (the first message's composer is replaced by the conversation's).
        expect(text).to_have_value(second)
        expect(previews(page)).to_have_text([f"{second}.txt"])
        expect(page.get_by_role("button", name=f"Remove {second}.txt")).to_be_enabled()
        assert page.evaluate(POSTED) == [f"{second}.txt"]
        text.press("Enter")
        expect(page.locator('[data-role="user"] .bubble').last).to_contain_text(second)
        expect(text).to_have_value("")
        expect(previews(page)).to_have_count(0)
    assert sent_attachments(server) == [
        (name, [f"{name}.txt"]) for name in ("First message", "Second message", "Third message", "Fourth message")
    ]


def test_sending_to_a_conversation_deleted_in_another_tab_says_so_in_the_composer(page, server):
    text = page.locator("#composer-text")
    text.fill("Hello")
    text.press("Enter")
    expect(page.locator('[data-role="assistant"]')).to_have_attribute("data-status", "done")
    other = page.context.new_page()
    cid = page.url.rsplit("/", 1)[-1]
    other.goto(f"{server.url}/sidebar/{cid}/delete")
    other.locator("form button[type=submit]").last.click()
    other.wait_for_load_state()
    other.close()

    page.locator("#composer-files").set_input_files([as_file("n.txt", b"x")])
    text.fill("After the delete")
    with expected_error(page, "404"):
        text.press("Enter")
    expect(page.locator("#composer-error")).to_contain_text("This conversation no longer exists")
    expect(page.locator("#composer-error")).to_contain_text("not sent")
    expect(page.locator("#messages .error-message")).to_have_count(0)
    expect(page.locator("#messages [data-role]")).to_have_count(2)
    expect(text).to_have_value("After the delete")
    expect(previews(page)).to_have_text(["n.txt"])


def test_the_composer_checks_svg_empty_files_sizes_and_suggests_only_available_models(page):
    error = page.locator("#composer-error")
    files = page.locator("#composer-files")
    page.get_by_label("Model").select_option(TEXT_ONLY)
    # An SVG is text: no thumbnail, and no "cannot see images" for a text-only model.
    files.set_input_files([as_file("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml")])
    expect(previews(page)).to_have_text(["drawing.svg"])
    expect(page.locator("#composer-previews img")).to_have_count(0)
    expect(error).to_have_text("")
    # An empty file is refused as the server would, and not attached.
    files.set_input_files([as_file("empty.txt", b"")])
    expect(error).to_have_text("empty.txt is empty.")
    expect(previews(page)).to_have_text(["drawing.svg"])
    files.set_input_files([as_file("one.txt", b"1")])
    expect(page.locator("#composer-previews .preview-size")).to_have_text([re.compile("bytes$"), "1 byte"])
    # An image: the models suggested are those that see images and can be picked (not the unavailable one).
    expect(page.locator(f'#composer-model option[value="{GONE}"]')).to_be_disabled()
    files.set_input_files([as_file("photo.png", png(), "image/png")])
    expect(error).to_have_text(
        f"{TEXT_ONLY} cannot see images. Pick one that can ({SEEING}), or send the message without the image."
    )


def test_a_folder_dropped_with_a_file_fails_to_send_without_losing_anything(page, server, tmp_path):
    folder = tmp_path / "adir"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_bytes(b"abc")
    text = page.locator("#composer-text")
    box = text.bounding_box()
    dropped = {"items": [], "files": [str(folder), str(folder / "a.txt")], "dragOperationsMask": 1}
    drag = {"x": box["x"] + 20, "y": box["y"] + 10, "data": dropped}
    session = page.context.new_cdp_session(page)
    for kind in ("dragEnter", "dragOver", "drop"):  # a real drop, as the browser makes it from the desktop
        session.send("Input.dispatchDragEvent", {"type": kind, **drag})
    expect(previews(page)).to_have_text(["adir", "a.txt"])
    text.fill("With a folder")
    with expected_error(page, "ERR_ACCESS_DENIED"):  # the browser cannot read a folder as a file
        text.press("Enter")
    expect(page.locator("#composer-error")).to_have_text(NOT_SENT)
    forget_send_errors(page)
    expect(text).to_have_value("With a folder")
    expect(previews(page)).to_have_text(["adir", "a.txt"])
    page.get_by_role("button", name="Remove adir").click()
    page.get_by_role("button", name="Send").click()
    expect(page.locator('[data-role="user"] .attachment a')).to_have_text(["a.txt"])
    expect(text).to_have_value("")
