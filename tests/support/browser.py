"""Chromium, driven by Playwright, pages that collect console errors, and a seeded guest to open them as."""

import contextlib
import os

from chatbot.conversations import new_id

from .app import as_guest, build_app
from .seeding import seed_conversations
from .servers import LiveServer

AXE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "node_modules", "axe-core", "axe.min.js")

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def open_page(browser, url, **context_options):
    """A page in a new browser context, at url; page.errors collects console errors and uncaught exceptions."""
    context = browser.new_context(**context_options)
    page = context.new_page()
    page.errors = []
    page.on("console", lambda message: page.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(url)
    return page


def close_page(page):
    """Close the page's context, then fail if anything was logged as an error meanwhile."""
    page.context.close()
    assert page.errors == [], f"console errors: {page.errors}"


def axe_violations(page):
    """axe-core's serious and critical violations on the page, as (rule, impact, [targets]); [] when clean."""
    # Evaluated through the DevTools protocol, which the page's CSP does not govern (a <script> would be refused).
    with open(AXE) as source:
        page.evaluate(source.read() + "\n;undefined")
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        (violation["id"], violation["impact"], [node["target"] for node in violation["nodes"]])
        for violation in result["violations"]
        if violation["impact"] in ("serious", "critical")
    ]


def send_message(page, text="Show me some Markdown."):
    """Type text in the composer and press Enter; return the last reply's locator (its end is not waited for)."""
    composer = page.locator('textarea[name="text"]')
    composer.fill(text)
    composer.press("Enter")
    return page.locator('[data-role="assistant"]').last


@contextlib.contextmanager
def seeded_guest(data_dir, llm, conversations, messages):
    """The app over a folder store in data_dir, served over HTTP, with a guest who has `conversations` seeded
    conversations of `messages` messages: yields (server url, the guest's session cookie, the conversations'
    index entries, newest first). At the end, waits for the replies the test started."""
    app = build_app(data_dir, llm)
    uid = new_id()
    entries = seed_conversations(app.extensions["store"], uid, conversations, messages=messages)
    client = as_guest(app.test_client(), uid)
    client.get("/new")
    with LiveServer(app) as server:
        yield server.url, client.get_cookie("session").value, entries
    app.extensions["replies"].wait_for_jobs(60)


def open_as_guest(browser, guest, path="/", **context_options):
    """open_page at path as seeded_guest's guest (its session cookie set first)."""
    url, cookie, _ = guest
    page = open_page(browser, "about:blank", **context_options)
    page.context.add_cookies([{"name": "session", "value": cookie, "url": url}])
    page.goto(url + path)
    return page
