"""A streaming reply in Chromium holds only what the sanitiser allows, at every moment, whatever its characters.

A reply's live Markdown reaches the page as patches whose offsets cut the page's HTML (chatbot/render.py,
LiveMarkdown). Counted in other units than the page's (Python characters against JavaScript's UTF-16), every
emoji moved the cut, and a reply could cut its way into a tag of its own making: a <meta> refresh that took
the tab elsewhere, an <iframe srcdoc> running the app's own htmx. The model is a FAKE (support's FakeSlowLLM)
sending such replies in pieces, the emoji first; what is tested is what the page builds from them. Then
app.js's own check, alone: patches no sanitiser made are refused in the page.
"""

import contextlib

import pytest
from playwright.sync_api import expect
from test_render import HREFS

from chatbot.render import ALLOWED_ATTRIBUTES, ALLOWED_TAGS
from support import FakeSlowLLM, LiveServer, close_page, open_page, send_message

pytestmark = pytest.mark.browser

# Each cut a few units short with the old offsets, the text after a code span became a tag.
ATTACKS = {
    "meta refresh": ["😀" * 6 + "`code`", 'meta http-equiv="refresh" content="0;url=/pwned" x', " and more text."],
    "meta refresh after 14 emoji": ["😀" * 14 + "`c` ", 'meta http-equiv="refresh" content="0;url=/pwned" x', " more."],
    "iframe srcdoc": [
        "😀" * 6 + "`code`",
        'iframe srcdoc="&lt;script src=/static/vendor/htmx-2.0.11/htmx.min.js&gt;&lt;/script&gt;" x',
        " and more text.",
    ],
}
HARMLESS = (
    "Here is a 😀 reply with 🎉 emoji, 𝔘nicode and \U00020000 too.\n\n"
    "A second 👩\u200d💻 paragraph: 🇫🇷 flags, 漢字 and 𝔘𝔘𝔘 all arrive whole.\n\nThe end 🎉."
)

# Records, in the page, every element (with its attributes) that enters a streaming reply's text, and the
# reply's text after each change. What app.js adds itself (a finished code block's header) is left out.
RECORD_THE_LIVE_REPLY = """
window.entered = [];
window.liveTexts = [];
new MutationObserver(function (records) {
  var changed = null;
  records.forEach(function (record) {
    var holder = record.target.nodeType === 1 ? record.target : record.target.parentNode;
    var content = holder && holder.closest && holder.closest(".content.streaming");
    if (!content) return;
    changed = content;
    record.addedNodes.forEach(function (node) {
      if (node.nodeType !== 1) return;
      [node].concat(Array.from(node.querySelectorAll("*"))).forEach(function (element) {
        if (element.closest(".code-header")) return;
        var attributes = Array.from(element.attributes).map(function (a) { return [a.name, a.value]; });
        window.entered.push([element.localName, attributes.filter(function (a) { return a[0] !== "data-decorated"; })]);
      });
    });
  });
  if (changed) window.liveTexts.push(changed.textContent);
}).observe(document, { childList: true, subtree: true });
"""


def not_allowed(entered):
    """The elements and attributes, of those recorded, that the sanitiser's allow-list does not permit."""
    found = []
    for tag, attributes in entered:
        if tag not in ALLOWED_TAGS:
            found.append(tag)
            continue
        allowed = ALLOWED_ATTRIBUTES.get(tag, [])
        for name, value in attributes:
            if not (allowed(tag, name, value) if callable(allowed) else name in allowed):
                found.append(f"{tag}[{name}={value!r}]")
    return found


@pytest.fixture
def serve(make_app):
    """serve(pieces, interval): a running app whose FAKE model replies pieces, one every interval seconds (0.15:
    each a render of its own); returns its URL."""
    with contextlib.ExitStack() as servers:

        def start(pieces, interval=0.15):
            app = make_app()
            app.extensions["llm"] = FakeSlowLLM(list(pieces), interval=interval)
            return servers.enter_context(LiveServer(app)).url

        yield start


def open_recording(browser, url):
    """A page at url that records its live reply (RECORD_THE_LIVE_REPLY), its navigations and its frames."""
    page = open_page(browser, url)
    page.add_init_script(RECORD_THE_LIVE_REPLY)
    page.reload()
    page.navigations, page.frames_attached = [], []
    page.on("framenavigated", lambda frame: page.navigations.append(frame.url))
    page.on("frameattached", lambda frame: page.frames_attached.append(frame.url))
    return page


@pytest.mark.parametrize("name", ATTACKS)
def test_a_reply_cannot_cut_its_way_into_a_tag(browser, serve, name):
    page = open_recording(browser, serve(ATTACKS[name]))
    reply = send_message(page)
    expect(reply).to_have_attribute("data-status", "done")
    entered = page.evaluate("window.entered")
    assert entered, "the reply was never shown while it streamed"
    assert not_allowed(entered) == []
    assert not any("pwned" in url for url in page.navigations) and "pwned" not in page.url
    assert page.frames_attached == [] and len(page.frames) == 1
    # The reply's markup-like text is shown as text.
    expect(reply.locator(".content")).to_contain_text("iframe srcdoc=" if "iframe" in name else "meta http-equiv=")
    close_page(page)


def test_an_emoji_reply_streams_with_no_character_lost(browser, serve):
    pieces = [HARMLESS[start : start + 3] for start in range(0, len(HARMLESS), 3)]
    page = open_recording(browser, serve(pieces, interval=0.03))
    reply = send_message(page)
    expect(reply).to_have_attribute("data-status", "done")
    texts = page.evaluate("window.liveTexts")
    assert len(texts) > 3, "the reply was not shown while it streamed"
    for before, after in zip(texts, texts[1:], strict=False):
        assert after.startswith(before), f"{before!r} then {after!r}"
    # Paragraphs are separated by one line break in the HTML's text.
    assert texts[-1] == HARMLESS.replace("\n\n", "\n")
    assert reply.locator(".content").text_content() == texts[-1]
    close_page(page)


# Applies render patches, in the page, to a streaming reply's text as its event stream would; returns what
# the reply then holds (its finished blocks, then its tail).
APPLY_PATCHES = """
(patches) => {
  var content = document.createElement("div");
  content.className = "content markdown streaming";
  content.innerHTML = '<div class="live-blocks"></div><div class="live-tail"></div>';
  document.body.appendChild(content);
  patches.forEach(function (patch) {
    var init = { bubbles: true, cancelable: true, detail: { type: "render", data: patch } };
    content.dispatchEvent(new CustomEvent("htmx:sseBeforeMessage", init));
  });
  return [content.firstChild.innerHTML, content.lastChild.innerHTML];
}
"""
GOOD = ["0\n0\n<p>😀 o", "7\n0\nk</p>"]  # keep "<p>😀 o": 6 characters, 7 units


@pytest.mark.parametrize(
    "bad",
    [
        '7\n0\nk</p><img src="/pwned">',  # an element the sanitiser never allows
        '7\n0\nk</p><p id="composer-text">x</p>',  # an attribute it never allows
        '7\n0\nk</p><a href="java\tscript:alert(1)">x</a>',  # a URL scheme it never allows
        "99\n0\nk</p>",  # keeping more than the page holds
        "7\n99\nk</p>",  # finishing more than the page holds
        "seven\n0\nk</p>",  # no offsets at all
    ],
)
def test_the_page_refuses_a_patch_the_sanitiser_could_not_have_made(browser, serve, bad):
    page = open_page(browser, serve(["unused"]))
    assert page.evaluate(APPLY_PATCHES, GOOD) == ["", "<p>😀 ok</p>"]
    # Refused, and so is every later patch: the reply stays as it was until its final event replaces it.
    assert page.evaluate(APPLY_PATCHES, [GOOD[0], bad, GOOD[1]]) == ["", "<p>😀 o</p>"]
    close_page(page)


def test_the_page_moves_finished_blocks_by_utf16_offsets(browser, serve):
    page = open_page(browser, serve(["unused"]))
    patches = [*GOOD, "12\n13\n\n<p>𝔘 next</p>"]  # "<p>😀 ok</p>" is 12 units, then its line break
    assert page.evaluate(APPLY_PATCHES, patches) == ["<p>😀 ok</p>\n", "<p>𝔘 next</p>"]
    close_page(page)


@pytest.mark.parametrize("source", HREFS)
def test_the_page_checks_a_links_href_by_the_servers_rule(browser, serve, source):
    page = open_page(browser, serve(["unused"]))
    patches = [GOOD[0], f'7\n0\nk <a href="{source}">x</a></p>', "0\n0\n<p>next</p>"]
    blocks, tail = page.evaluate(APPLY_PATCHES, patches)
    # Kept, the later patch applies too; refused, the reply stays as it was (and every later patch is refused).
    assert tail == ("<p>next</p>" if HREFS[source] else "<p>😀 o</p>")
    close_page(page)


def test_a_link_to_a_time_does_not_stop_the_live_view(browser, serve):
    text = "Meet at [the hall](10:30) tomorrow.\n\nMore text after that, which the page shows live.\n\nAnd more.\n"
    page = open_recording(browser, serve([text[start : start + 2] for start in range(0, len(text), 2)], 0.02))
    reply = send_message(page)
    expect(reply).to_have_attribute("data-status", "done")
    streamed = page.evaluate("window.liveTexts")
    assert any("which the page shows live" in text for text in streamed)
    expect(reply.locator('.content a[href="10:30"]')).to_have_text("the hall")
    close_page(page)
