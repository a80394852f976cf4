"""Attachments in Chromium: the "Attach files" button, paste and drop; previews with remove buttons, kept in step
with the file input; the composer's own checks (a model that cannot see images, the caps) before anything is
sent; a sent message's thumbnail and links; the keyboard; a request over MAX_CONTENT_LENGTH; no JavaScript.
The model is a FAKE (FakeLLM under two names): what is tested is the page, not the reply."""

import base64
import contextlib
import re

import pytest
from playwright.sync_api import expect

from support import FakeLLM, LiveServer, axe_violations, build_app, close_page, open_page, stored_conversations
from support.files import png

pytestmark = pytest.mark.browser

SEEING, TEXT_ONLY = "seeing-model", "text-model"
ASTRAL = "𝔘nicode 😀 notes.txt"

# A DataTransfer holding Files made from [name, type, base64 bytes], as a paste or a drop carries them.
TRANSFER = """files => {
  const transfer = new DataTransfer();
  for (const [name, type, data] of files) {
    transfer.items.add(new File([Uint8Array.from(atob(data), c => c.charCodeAt(0))], name, {type}));
  }
  return transfer;
}"""
PASTE = """([target, transfer]) => target.dispatchEvent(
  new ClipboardEvent("paste", {clipboardData: transfer, bubbles: true, cancelable: true}))"""
# Whether an image URL loads (a revoked object URL does not).
LOADS = """url => new Promise(done => {
  const image = new Image();
  image.onload = () => done("read");
  image.onerror = () => done("revoked");
  image.src = url;
})"""
DROP = """([target, transfer]) => target.dispatchEvent(
  new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}))"""
POSTED = "Array.from(document.getElementById('composer-files').files, file => file.name)"


class TwoModels(FakeLLM):
    """A FAKE model under two names: one that sees images (VISION_MODELS), one that reads text only."""

    def __init__(self):
        super().__init__()
        self.models = [SEEING, TEXT_ONLY]


@pytest.fixture
def serve(tmp_path):
    """serve(**settings): the app with TwoModels over a folder store, over HTTP; its replies waited for at the end."""
    servers = []

    def start(**settings):
        app = build_app(tmp_path / f"app{len(servers)}", TwoModels(), VISION_MODELS=[SEEING], **settings)
        servers.append(LiveServer(app).__enter__())
        return servers[-1]

    yield start
    for server in servers:
        server.__exit__(None, None, None)
        server.app.extensions["replies"].wait_for_jobs(60)


@pytest.fixture
def server(serve):
    return serve()


@pytest.fixture
def page(browser, server):
    page = open_page(browser, server.url)
    yield page
    close_page(page)


def as_file(name, data, mime):
    """A file as Playwright's set_input_files takes it."""
    return {"name": name, "mimeType": mime, "buffer": data}


@contextlib.contextmanager
def expected_error(page, text):
    """Wait for the console error the block causes (a refused request, a revoked URL), and take it off page.errors."""
    with page.expect_console_message(lambda message: message.type == "error" and text in message.text) as logged:
        yield
    page.errors.remove(logged.value.text)


def transfer(page, *files):
    """A DataTransfer in the page holding files ((name, mime, bytes))."""
    return page.evaluate_handle(TRANSFER, [[name, mime, base64.b64encode(data).decode()] for name, mime, data in files])


def previews(page):
    return page.locator("#composer-previews .preview")


def sent_attachments(server):
    """The names of the files the stored user messages carry, message by message."""
    (conversation,) = stored_conversations(server.app)
    return [[file["name"] for file in message.get("attachments") or []] for message in conversation["messages"]]


def test_files_from_the_chooser_a_paste_and_a_drop_show_as_previews_and_are_what_is_posted(page, server):
    page.on("filechooser", lambda chooser: None)  # intercepted from the start (see the keyboard test)
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Attach files").click()
    assert chooser.value.is_multiple()
    chooser.value.set_files([as_file("notes.md", b"# Notes\n", "text/markdown")])
    page.locator("#composer-text").fill("Three files")
    page.evaluate(
        PASTE, [page.locator("#composer-text").element_handle(), transfer(page, ("clip.csv", "text/csv", b"a,1\n"))]
    )
    composer = page.locator("#composer")
    dropped = transfer(page, ("photo.png", "image/png", png((300, 200))))
    composer.dispatch_event("dragenter", {"dataTransfer": dropped})
    composer.dispatch_event("dragover", {"dataTransfer": dropped})
    expect(composer).to_have_class(re.compile(r"\bdropping\b"))  # the drop state shows while files are over it
    page.locator("#composer-text").dispatch_event("drop", {"dataTransfer": dropped})
    expect(composer).not_to_have_class(re.compile(r"\bdropping\b"))
    # Dropped beside the composer: cancelled (the browser would open the file in place of the page), not attached.
    beside = [page.locator("#messages").element_handle(), transfer(page, ("beside.txt", "text/plain", b"x"))]
    assert page.evaluate(DROP, beside) is False

    expect(previews(page).locator(".preview-name")).to_have_text(["notes.md", "clip.csv", "photo.png"])
    expect(previews(page).locator(".preview-size")).to_have_text(
        ["8 bytes", "4 bytes", re.compile(r"^\d+ (bytes|KB)$")]
    )
    expect(previews(page).locator("img")).to_have_count(1)  # a thumbnail for the image only
    assert page.locator("#composer-previews img").get_attribute("src").startswith("blob:")
    assert page.evaluate("document.querySelector('#composer-previews img').naturalWidth") == 300
    expect(page.locator("#composer-text")).to_have_value("Three files")  # a paste of files adds no text
    assert page.evaluate(POSTED) == ["notes.md", "clip.csv", "photo.png"]
    assert axe_violations(page) == []
    thumbnail = page.locator("#composer-previews img").get_attribute("src")

    page.locator("#composer-text").press("Enter")
    user = page.locator('[data-role="user"]')
    expect(user.locator(".attachment")).to_have_count(3)
    expect(previews(page)).to_have_count(0)  # sent: the previews and the input are cleared
    assert page.evaluate(POSTED) == []
    assert sent_attachments(server)[0] == ["notes.md", "clip.csv", "photo.png"]
    with expected_error(page, "net::ERR_FILE_NOT_FOUND"):
        assert page.evaluate(LOADS, thumbnail) == "revoked"  # the preview's object URL was let go


def test_a_file_removed_before_sending_is_neither_posted_nor_shown(page, server):
    page.locator("#composer-files").set_input_files(
        [as_file("a.txt", b"alpha", "text/plain"), as_file("photo.png", png(), "image/png")]
    )
    page.locator("#composer-files").set_input_files([as_file("c.txt", b"gamma", "text/plain")])  # added, not replacing
    expect(previews(page).locator(".preview-name")).to_have_text(["a.txt", "photo.png", "c.txt"])
    thumbnail = page.locator("#composer-previews img").get_attribute("src")
    page.get_by_role("button", name="Remove photo.png").click()
    expect(previews(page).locator(".preview-name")).to_have_text(["a.txt", "c.txt"])
    assert page.evaluate(POSTED) == ["a.txt", "c.txt"]
    # The image's object URL was revoked once its thumbnail showed: nothing of it is left behind.
    with expected_error(page, "net::ERR_FILE_NOT_FOUND"):
        assert page.evaluate(LOADS, thumbnail) == "revoked"
    expect(page.get_by_role("button", name="Remove c.txt")).to_be_focused()  # the next file's button

    page.locator("#composer-text").fill("Two of three")
    page.get_by_role("button", name="Send").click()
    expect(page.locator('[data-role="user"] .attachment a')).to_have_text(["a.txt", "c.txt"])
    assert sent_attachments(server)[0] == ["a.txt", "c.txt"]

    # A second message in the conversation (its composer stays on the page): cleared once sent.
    page.locator("#composer-files").set_input_files([as_file("d.txt", b"delta", "text/plain")])
    page.locator("#composer-text").fill("One more")
    page.locator("#composer-text").press("Enter")
    expect(page.locator('[data-role="user"]').last.locator(".attachment a")).to_have_text(["d.txt"])
    expect(previews(page)).to_have_count(0)
    assert page.evaluate(POSTED) == []
    assert sent_attachments(server)[2] == ["d.txt"]


def test_a_sent_image_is_a_thumbnail_that_opens_full_size_and_a_file_a_named_link(page, server):
    page.locator("#composer-files").set_input_files(
        [as_file("wide.png", png((800, 400)), "image/png"), as_file("data.csv", b"x,y\n" * 400, "text/csv")]
    )
    page.locator("#composer-text").fill("Look")
    page.locator("#composer-text").press("Enter")
    expect(page.locator('[data-role="assistant"]')).to_have_attribute("data-status", "done")
    image_id, file_id = (file["id"] for file in stored_conversations(server.app)[0]["messages"][0]["attachments"])

    thumbnail = page.get_by_role("link", name="wide.png")
    expect(thumbnail).to_have_attribute("href", f"/files/{image_id}")
    image = thumbnail.locator("img")
    expect(image).to_have_attribute("src", f"/files/{image_id}")
    page.wait_for_function("image => image.complete && image.naturalWidth === 800", arg=image.element_handle())
    box = image.bounding_box()
    assert (box["width"], box["height"]) == (160, 120)  # a thumbnail, in a box fixed before it loads
    with page.expect_popup() as popup:
        thumbnail.click()
    full = popup.value
    full.wait_for_load_state()
    assert full.url == f"{server.url}/files/{image_id}"
    assert full.evaluate("document.images[0].naturalWidth") == 800  # full size
    full.close()

    link = page.get_by_role("link", name="data.csv")
    expect(link).to_have_attribute("href", f"/files/{file_id}")
    expect(link).to_have_attribute("download", "data.csv")
    expect(page.locator('[data-role="user"] .attachment-size')).to_have_text("(2 KB)")


def test_an_image_for_a_model_that_cannot_see_is_said_before_sending_and_the_server_refuses_it(page, server):
    page.get_by_label("Model").select_option(TEXT_ONLY)
    page.locator("#composer-files").set_input_files([as_file("photo.png", png(), "image/png")])
    error = page.locator("#composer-error")
    said = f"{TEXT_ONLY} cannot see images. Pick one that can ({SEEING}), or send the message without the image."
    expect(error).to_have_text(said)
    page.get_by_label("Model").select_option(SEEING)
    expect(error).to_have_text("")
    page.get_by_label("Model").select_option(TEXT_ONLY)
    expect(error).to_have_text(said)

    page.locator("#composer-text").fill("Sent anyway")
    with expected_error(page, "400 (BAD REQUEST)"), page.expect_response(re.compile("/new$")) as answer:
        page.get_by_role("button", name="Send").click()
    assert answer.value.status == 400
    expect(error).to_contain_text(f"{TEXT_ONLY} cannot see images.")
    # Refused: the text and the file stay as they were.
    expect(page.locator("#composer-text")).to_have_value("Sent anyway")
    expect(previews(page).locator(".preview-name")).to_have_text(["photo.png"])
    assert page.evaluate(POSTED) == ["photo.png"]
    page.get_by_role("button", name="Remove photo.png").click()
    page.get_by_role("button", name="Send").click()
    expect(page.locator('[data-role="user"] .bubble')).to_have_text("Sent anyway")


def test_files_over_the_caps_are_refused_in_the_composer_without_uploading(browser, serve):
    server = serve(ATTACHMENT_FILE_BYTES=50 * 1024, ATTACHMENT_MESSAGE_BYTES=80 * 1024, ATTACHMENT_MESSAGE_FILES=3)
    page = open_page(browser, server.url)
    posts = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    page.locator("#composer-text").fill("My words stay")
    files = page.locator("#composer-files")
    error = page.locator("#composer-error")

    files.set_input_files([as_file("huge.txt", b"h" * 60_000, "text/plain")])
    expect(error).to_have_text("huge.txt is 59 KB; a file may be at most 50 KB.")
    expect(previews(page)).to_have_count(0)
    files.set_input_files(
        [as_file("a.txt", b"a" * 40 * 1024, "text/plain"), as_file("b.txt", b"b" * 41 * 1024, "text/plain")]
    )
    expect(error).to_have_text("These files come to 81 KB; a message may carry 80 KB.")
    expect(previews(page).locator(".preview-name")).to_have_text(["a.txt"])
    files.set_input_files([as_file(name, b"small", "text/plain") for name in ("c.txt", "d.txt", "e.txt")])
    expect(error).to_have_text("A message may carry 3 files at most.")
    expect(previews(page).locator(".preview-name")).to_have_text(["a.txt", "c.txt", "d.txt"])
    assert page.evaluate(POSTED) == ["a.txt", "c.txt", "d.txt"]
    expect(page.locator("#composer-text")).to_have_value("My words stay")
    assert posts == []  # nothing was uploaded
    close_page(page)


def test_a_name_outside_the_bmp_shows_unchanged_in_the_preview_and_the_sent_message(page, server):
    page.locator("#composer-files").set_input_files([as_file(ASTRAL, "Résumé 😀\n".encode(), "text/plain")])
    expect(previews(page).locator(".preview-name")).to_have_text(ASTRAL)
    expect(page.get_by_role("button", name=f"Remove {ASTRAL}")).to_be_visible()
    page.locator("#composer-text").fill("Read 😀")
    page.locator("#composer-text").press("Enter")
    link = page.locator('[data-role="user"] .attachment a')
    expect(link).to_have_text(ASTRAL)
    expect(link).to_have_attribute("download", ASTRAL)
    assert sent_attachments(server)[0] == [ASTRAL]


def test_the_keyboard_alone_opens_the_chooser_and_removes_files(page):
    # Playwright starts intercepting choosers when asked to wait for one, which a key press can outrun (the
    # chooser then opens and closes unseen): a listener from the start makes it intercept them all.
    page.on("filechooser", lambda chooser: None)
    page.locator("#composer-text").focus()
    page.keyboard.press("Tab")
    attach = page.get_by_role("button", name="Attach files")
    expect(attach).to_be_focused()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files([as_file("one.txt", b"1", "text/plain"), as_file("two.txt", b"2", "text/plain")])
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files([as_file("three.txt", b"3", "text/plain")])
    expect(previews(page)).to_have_count(3)
    # The remove buttons come before the message in the tab order, as their files are shown above it.
    page.keyboard.press("Shift+Tab")
    expect(page.locator("#composer-text")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("button", name="Remove three.txt")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("button", name="Remove two.txt")).to_be_focused()
    page.keyboard.press("Enter")
    expect(previews(page).locator(".preview-name")).to_have_text(["one.txt", "three.txt"])
    expect(page.get_by_role("button", name="Remove three.txt")).to_be_focused()
    page.keyboard.press("Space")  # the last file's button: the focus goes to the file before
    expect(page.get_by_role("button", name="Remove one.txt")).to_be_focused()
    page.keyboard.press("Enter")  # no file left: the focus goes back to the button that adds them
    expect(previews(page)).to_have_count(0)
    expect(attach).to_be_focused()


def test_a_request_over_max_content_length_is_said_with_the_text_kept_with_and_without_javascript(browser, serve):
    # Under the composer's caps (so app.js lets it go) but over the body the server reads: 300 KB against 100 KB.
    server = serve(MAX_CONTENT_LENGTH=100 * 1024)
    big = as_file("big.txt", b"a" * 300_000, "text/plain")
    said = "That was too much to send at once: a message may carry 4 files, 20 MB in all and 10 MB each."

    page = open_page(browser, server.url)
    page.locator("#composer-files").set_input_files([big])
    page.locator("#composer-text").fill("Keep me")
    with expected_error(page, "413 (REQUEST ENTITY TOO LARGE)"):
        page.get_by_role("button", name="Send").click()
    expect(page.locator("#composer-error")).to_have_text(said)
    expect(page.locator("#composer-text")).to_have_value("Keep me")
    expect(previews(page).locator(".preview-name")).to_have_text(["big.txt"])
    close_page(page)

    page = open_page(browser, server.url, java_script_enabled=False)
    page.get_by_label("Attach files").set_input_files([big])
    page.locator("#composer-text").fill("Keep me too")
    with expected_error(page, "413 (REQUEST ENTITY TOO LARGE)"):
        page.get_by_role("button", name="Send").click()
    expect(page.locator(".error-page")).to_contain_text(said)
    expect(page.locator(".error-page")).to_contain_text("Go back (your message is still there as you typed it)")
    page.go_back()
    expect(page.locator("#composer-text")).to_have_value("Keep me too")
    close_page(page)
    assert stored_conversations(server.app) == []


def test_without_javascript_the_plain_file_input_sends_the_files(browser, server):
    page = open_page(browser, server.url, java_script_enabled=False)
    expect(page.locator(".attach-button")).to_be_hidden()  # it needs JavaScript: the plain input shows instead
    expect(page.get_by_label("Attach files")).to_be_visible()
    page.get_by_label("Attach files").set_input_files([as_file(ASTRAL, b"plain", "text/plain")])
    page.locator("#composer-text").fill("No scripts")
    page.get_by_role("button", name="Send").click()
    expect(page.locator('[data-role="user"] .attachment a')).to_have_text(ASTRAL, timeout=30_000)
    close_page(page)
