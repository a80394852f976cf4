"""Chromium, driven by Playwright, and pages that collect console errors."""

import os

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
