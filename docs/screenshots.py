"""The README's screenshots (light, dark, phone, a share link, files about to be sent, branches with an image)
with Chromium: `.venv/bin/python docs/screenshots.py` (`--branches-only`: the last two, with a fake model)."""

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from chatbot.llm.local import LocalLLM  # noqa: E402
from support import CHROMIUM, CHROMIUM_ARGS, FakeLLM, LiveServer, build_app, send_message  # noqa: E402

PROMPTS = ["Write a Python function that reverses a string.", "What is the capital of France?"]


def main():
    """Chat twice, then photograph the conversation in each scheme and on a phone, and its share link."""
    app = build_app(Path(tempfile.mkdtemp()), LocalLLM(), MAX_TOKENS=160)
    with LiveServer(app) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1000, "height": 620})
        page = context.new_page()
        page.goto(server.url)
        for prompt in PROMPTS:
            with page.expect_response(lambda response: response.url.endswith("/new")):
                page.get_by_role("link", name="New chat", exact=True).click()
            page.wait_for_function("!document.querySelector('.htmx-request, .htmx-settling')")
            expect(send_message(page, prompt)).to_have_attribute("data-status", "done", timeout=60_000)
            expect(page.locator("#sidebar [aria-current] ")).not_to_have_text("Untitled chat", timeout=30_000)
        page.locator("#sidebar .entry-link").last.click()
        expect(page.locator('[data-role="user"] .bubble')).to_have_text(PROMPTS[0])
        url = page.url
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            page.screenshot(path=str(ROOT / "docs" / f"screenshot-{scheme}.png"))
        phone = context.new_page()  # the same guest, so the same conversations
        phone.set_viewport_size({"width": 375, "height": 667})
        phone.goto(url)
        phone.screenshot(path=str(ROOT / "docs" / "screenshot-phone.png"))
        page.emulate_media(color_scheme="light")
        page.locator("#conversation-menu summary").click()
        page.locator("#conversation-menu").get_by_role("link", name="Share").click()
        page.get_by_role("button", name="Create a share link").click()
        link = page.locator(".share-url").first.input_value()
        reader = browser.new_context(viewport={"width": 1000, "height": 620}).new_page()  # someone with the link
        reader.goto(link)
        reader.screenshot(path=str(ROOT / "docs" / "screenshot-share.png"))
        browser.close()
    for name in ("light", "dark", "phone", "share"):
        path = ROOT / "docs" / f"screenshot-{name}.png"
        print(path.relative_to(ROOT), os.path.getsize(path), "bytes")


class NumberedReplies(FakeLLM):
    """A FAKE model whose replies say which one they are, so two versions of a reply look different."""

    count = 0

    def stream(self, messages, model=None, **params):
        """A short Markdown reply, numbered."""
        NumberedReplies.count += 1
        yield from [f"Version {NumberedReplies.count} of this reply: ", "a **photo** of a ", "sunset over water."]


def attach(page, *paths):
    """Attach files as a user does: the "Attach files" button, then the chooser."""
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Attach files").click()
    chooser.value.set_files([str(path) for path in paths])


def branches():
    """Files about to be sent (their previews, on a phone); then, on a desktop, a sent photo's thumbnail and a
    regenerated reply: the version control."""
    from PIL import Image

    folder = Path(tempfile.mkdtemp())
    photo, notes = folder / "sunset.jpg", folder / "trip notes.md"
    Image.linear_gradient("L").resize((640, 360)).convert("RGB").save(photo)
    notes.write_text("# Trip notes\n\nThe bay at dusk.\n" * 40)
    model = NumberedReplies().models[0]
    app = build_app(Path(tempfile.mkdtemp()), NumberedReplies(), VISION_MODELS=[model], RATELIMIT_ENABLED=False)
    with LiveServer(app) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        phone = browser.new_context(viewport={"width": 390, "height": 740}).new_page()
        phone.goto(server.url)
        attach(phone, photo, notes)
        phone.locator('textarea[name="text"]').fill("What is in this photo, and do my notes match it?")
        expect(phone.locator("#composer-previews img")).to_have_js_property("complete", True)
        phone.screenshot(path=str(ROOT / "docs" / "screenshot-attach.png"))
        page = browser.new_context(viewport={"width": 1000, "height": 620}).new_page()
        page.goto(server.url)
        attach(page, photo)
        expect(send_message(page, "What is in this photo?")).to_have_attribute("data-status", "done")
        page.get_by_role("button", name="Regenerate").click()
        expect(page.locator(".version-count")).to_have_text("2 / 2")
        expect(page.locator(".attachment img")).to_have_js_property("complete", True)
        page.screenshot(path=str(ROOT / "docs" / "screenshot-branches.png"))
        browser.close()
    for name in ("attach", "branches"):
        path = ROOT / "docs" / f"screenshot-{name}.png"
        print(path.relative_to(ROOT), os.path.getsize(path), "bytes")


if __name__ == "__main__":
    branches()
    if "--branches-only" not in sys.argv:
        main()
