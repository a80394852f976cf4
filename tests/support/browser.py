"""Chromium, driven by Playwright, and pages that collect console errors."""

import os

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
