"""Markdown rendered while a reply arrives (chatbot/render.py, LiveMarkdown), piece by piece."""

import random
import re
from pathlib import Path

import pytest
from bleach._vendor import html5lib

from chatbot.events import frame
from chatbot.render import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_PROTOCOLS,
    ALLOWED_TAGS,
    LiveMarkdown,
    _open_fence,
    render_markdown,
)
from support import LivePage, assemble

DOCUMENTS = {
    "mixed": "# Title\n\nSome *text* here.\n\n```python\ndef f(x):\n    return x\n```\n\nAfter the code.\n\n"
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two\n\n- a loose item\n\nThe end.",
    "lists and quotes": "Para one.\n\nPara two with `code`.\n\n1. a\n2. b\n\n3. c\n\n> quote\n\nlast line",
    "framing": "cr\ronly crlf\r\nline two\n\nparagraphs event: done\ndata: forged\n\nid: 9\nend",
    "html": "<script>alert(1)</script> and <b>bold</b>\n\n[a link](javascript:alert(1)) [ok](https://example.com)",
    "long": "\n\n".join(f"Paragraph {number} says something about item {number}." for number in range(60)),
}


def stream(text, seed):
    """Feed text to a LiveMarkdown in random pieces of 1 to 8 characters; return the patches."""
    pieces, position, chooser = [], 0, random.Random(seed)
    while position < len(text):
        size = chooser.randint(1, 8)
        pieces.append(text[position : position + size])
        position += size
    live = LiveMarkdown()
    return [patch for patch in map(live.feed, pieces) if patch is not None]


@pytest.mark.parametrize("name", DOCUMENTS)
def test_the_patches_build_exactly_the_final_render(name):
    text = DOCUMENTS[name]
    for seed in range(10):
        assert assemble(stream(text, seed)) == str(render_markdown(text))


def test_what_the_page_holds_at_every_step_is_the_render_of_the_text_so_far():
    text = DOCUMENTS["mixed"]
    live, held = LiveMarkdown(), []
    for end in range(1, len(text) + 1):
        patch = live.feed(text[end - 1])
        if patch is not None:
            held.append(patch)
        shown = assemble(held)
        assert "<script" not in shown
        if "```" not in text[:end] or text[:end].count("```") % 2 == 0:
            assert shown == str(render_markdown(text[:end]))


def test_an_open_code_block_shows_highlighted_at_once():
    live = LiveMarkdown()
    shown = assemble([live.feed("Here:\n\n```python\ndef greet(name):\n    return f'hi {name}'")])
    assert 'class="language-python highlight"' in shown and '<span class="k">def</span>' in shown
    assert "```" not in shown


def test_a_table_and_a_list_render_before_the_reply_ends():
    live = LiveMarkdown()
    shown = assemble([live.feed("| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two")])
    assert "<table>" in shown and "<ul>" in shown


def test_a_long_reply_sends_a_bounded_number_of_bytes():
    text = DOCUMENTS["long"]
    live = LiveMarkdown()
    # About what 100 ms of a model at 40 tokens a second brings (the job renders that often).
    patches = [live.feed(text[start : start + 16]) for start in range(0, len(text), 16)]
    sent = sum(len(patch) for patch in patches if patch)
    final = len(str(render_markdown(text)))
    # Finished blocks are never sent again: the patches cost the final HTML once, plus small headers.
    assert sent < 2 * final


# Text a reply may hold that a page counts differently from Python (characters outside the BMP are one
# character here, two UTF-16 units in JavaScript), mixed with markup-like text that must stay text.
NON_BMP = ["😀", "🎉", "𝔘", "\U00020000", "👩\u200d💻", "🇫🇷", "𝔘𝔘𝔘"]
MARKUP = [
    '<meta http-equiv="refresh" content="0;url=https://example.com/" x>',
    '<iframe srcdoc="<script src=/static/vendor/htmx.min.js></script>">',
    '<a href="javascript:alert(1)">x</a>',
    "<b>",
    "</p>",
    "&amp;",
    "&#x1F600;",
    "&lt;",
    "&",
    "<",
    ">",
    '"',
    "`",
    "`code ",
    "```python\n",
    "```\n",
    "\n",
    "\n\n",
    "- ",
    "1. ",
    "> ",
    "# ",
    "| a | 😀 |\n|---|---|\n| 𝔘 | b |\n",
    "**",
    "_",
    "[a link](https://example.com/😀)",
    "https://example.com/𝔘 ",
    "    ",
    "\r\n",
]
WORDS = ["Here", "is", "a", "reply", "é", "漢字", "—", " ", " ", " "]


def random_reply(chooser):
    """A reply rich in non-BMP characters and markup-like text; a code block it opens, it closes (the page
    shows an open block closed, so only a reply whose blocks are closed ends as render_markdown renders it)."""
    kinds = [NON_BMP] * 3 + [MARKUP] * 2 + [WORDS] * 3
    text = "".join(chooser.choice(chooser.choice(kinds)) for _ in range(chooser.randint(5, 60)))
    fence = _open_fence(text.split("\n"))
    return f"{text}\n{fence}" if fence else text


def random_pieces(text, chooser):
    """text cut at random places, as a model streams it."""
    pieces, position = [], 0
    while position < len(text):
        size = chooser.randint(1, 12)
        pieces.append(text[position : position + size])
        position += size
    return pieces


def through_sse(patch):
    """The patch as the page's EventSource gets it: framed by the app, its data lines joined again."""
    block = frame("render", patch)
    return "\n".join(line[len("data: ") :] for line in block.split("\n") if line.startswith("data: "))


def forbidden(html):
    """The elements and attributes in html, parsed as a browser parses it, that the sanitiser never allows."""
    found = []
    for element in html5lib.parseFragment(html, container="div", namespaceHTMLElements=False).iter():
        if not isinstance(element.tag, str) or element.tag == "DOCUMENT_FRAGMENT":
            continue  # text, comments
        if element.tag not in ALLOWED_TAGS:
            found.append(element.tag)
            continue
        allowed = ALLOWED_ATTRIBUTES.get(element.tag, [])
        for name, value in element.attrib.items():
            ok = allowed(element.tag, name, value) if callable(allowed) else name in allowed
            if name == "href":
                scheme = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*):", re.sub(r"[\x00-\x20]", "", value))
                ok = ok and (scheme is None or scheme.group(1).lower() in ALLOWED_PROTOCOLS)
            if not ok:
                found.append(f"{element.tag}[{name}={value!r}]")
    return found


@pytest.mark.parametrize("seed", range(8))
def test_a_page_holds_only_sanitised_html_at_every_step_whatever_the_characters(seed):
    chooser = random.Random(seed)
    for _ in range(25):
        text = random_reply(chooser)
        live, page = LiveMarkdown(), LivePage()
        for piece in random_pieces(text, chooser):
            patch = live.feed(piece)
            if patch is None:
                continue
            page.apply(through_sse(patch))
            # The page parses each finished chunk as it is inserted, and the tail whole.
            for html in page.blocks + [page.tail]:
                assert forbidden(html) == [], f"text {text!r}, piece {piece!r}"
        assert page.html == str(render_markdown(text)), f"text {text!r}"


def test_patch_offsets_count_utf16_units():
    live = LiveMarkdown()
    live.feed("😀 one")
    keep, commit, html = live.feed(" two").split("\n", 2)
    # <p>😀 one</p> and <p>😀 one two</p> share "<p>😀 one": 8 characters, 9 units in JavaScript.
    assert (keep, commit, html) == ("9", "0", " two</p>")


def test_app_js_checks_patches_against_the_sanitisers_own_allow_list():
    script = (Path(__file__).parent.parent / "chatbot" / "static" / "app.js").read_text()
    tags = re.search(r"var ALLOWED_TAGS = ((?:\s*\+?\s*\"[^\"]*\")+);", script).group(1)
    assert set("".join(re.findall(r"\"([^\"]*)\"", tags)).split()) == ALLOWED_TAGS
    attributes = re.search(r"var ALLOWED_ATTRIBUTES = \{(.*?)\};", script, re.S).group(1)
    in_script = {tag: set(names.split()) for tag, names in re.findall(r"(\w+): \"([^\"]*)\"", attributes)}
    # The class filter lets class through (its values are checked on the server only).
    assert in_script == {tag: {"class"} if callable(names) else set(names) for tag, names in ALLOWED_ATTRIBUTES.items()}


# Long replies of each kind of block that later text can still change, as a model streams them (8 characters a
# piece, about 2 tokens). Each was rendered whole on every update: work growing with the square of its length.
CODE_LINE = "result = compute_value(alpha, beta) + other_function(gamma)  # comment 😀\n"
LONG = {
    "prose": ("Some prose sentence that goes on for a while. " * 2 + "\n\n") * 120,
    "code block": "```python\n" + CODE_LINE * 160,
    "tight list": "".join(f"- item {number} with some words about it, *emphasis*\n" for number in range(230)),
    "table": "| a | b | c |\n|---|---|---|\n"
    + "".join(f"| cell {n} | more text here | `x{n}` |\n" for n in range(290)),
    "one paragraph": "word and *more* words " * 540,
    "raw HTML block": "<div>\n" + "text line with *emphasis* and `code`\n" * 320,
}


def rendered_characters(monkeypatch, text, size=8):
    """How many characters LiveMarkdown gives the renderer (Markdown, Pygments, bleach) for text streamed in
    pieces of size, its final piece included; and the patches."""
    import chatbot.render

    counted, render = [0], chatbot.render._render

    def counting(markdown_text):
        counted[0] += len(markdown_text)
        return render(markdown_text)

    monkeypatch.setattr(chatbot.render, "_render", counting)
    live = LiveMarkdown()
    patches = [live.feed(text[start : start + size]) for start in range(0, len(text), size)]
    patches.append(live.feed("", final=True))
    return counted[0], [patch for patch in patches if patch is not None]


@pytest.mark.parametrize("name", LONG)
def test_a_long_reply_costs_work_in_proportion_to_its_length_whatever_it_holds(monkeypatch, name):
    text = LONG[name]
    assert len(text) > 8000
    work, _ = rendered_characters(monkeypatch, text)
    prose, _ = rendered_characters(monkeypatch, LONG["prose"])
    # Prose renders each paragraph again as it grows: some 20 times its length in pieces of 8 characters.
    assert work <= 25 * len(text) and work <= 2 * prose * len(text) / len(LONG["prose"])


@pytest.mark.parametrize("name", LONG)
def test_a_long_reply_ends_as_its_final_render(monkeypatch, name):
    text = LONG[name] + ("```\n\nAfter the code.\n" if name == "code block" else "")
    _, patches = rendered_characters(monkeypatch, text, size=7)
    page = LivePage()
    for patch in patches:
        page.apply(through_sse(patch))
    assert page.html == str(render_markdown(text))


def plain_text(html):
    """The text a page shows for html (its tags dropped, its character references read)."""
    return "".join(html5lib.parseFragment(html, container="div", namespaceHTMLElements=False).itertext())


def test_an_open_code_block_shows_each_line_as_it_comes_and_highlighted_when_it_closes():
    text = "Here:\n\n```python\n" + "".join(f"value_{n} = '😀 <b>{n}</b>' & 𝔘\n" for n in range(120))
    live, page, chooser = LiveMarkdown(), LivePage(), random.Random(3)
    for piece in random_pieces(text, chooser):
        patch = live.feed(piece)
        if patch is not None:
            page.apply(through_sse(patch))
        shown, (_, _, code) = plain_text(page.html), live.text.partition("```python\n")
        # Every character of the code so far is on the page (as text: the <b> stays text), in UTF-16 offsets.
        assert code.rstrip("\n") in shown and forbidden(page.html) == []
        assert "<b>" not in page.html
    assert '<span class="n">value_0</span>' in page.html  # the first lines highlighted long before the end
    page.apply(through_sse(live.feed("```\n")))
    assert page.html == str(render_markdown(text + "```\n"))
