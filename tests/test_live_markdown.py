"""Markdown rendered while a reply arrives (chatbot/render.py, LiveMarkdown), piece by piece."""

import random

import pytest

from chatbot.render import LiveMarkdown, render_markdown
from support import assemble

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
