"""Markdown to safe HTML: model output is untrusted, so it is rendered, then cleaned."""

import re
import threading
from functools import lru_cache, partial

import bleach
import markdown
from bleach.linkifier import LinkifyFilter
from markupsafe import Markup
from pygments.token import STANDARD_TYPES

EXTENSIONS = ["pymdownx.highlight", "pymdownx.superfences", "tables", "sane_lists"]
EXTENSION_CONFIGS = {
    # Pygments classes (styled by static/pygments.css); the fence's language is kept as a class.
    "pymdownx.highlight": {"css_class": "highlight", "guess_lang": False, "pygments_lang_class": True},
    "tables": {"use_align_attribute": True},
}

ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "del",
    "div",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "li",
    "ol",
    "p",
    "pre",
    "span",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
# Only the classes code highlighting makes: Pygments' token classes, "highlight" and "language-*".
# Any other (a reply styling itself as the app's own controls, say) loses its class attribute.
KNOWN_CLASSES = frozenset(STANDARD_TYPES.values()) | {"highlight"}
LANGUAGE_CLASS = re.compile(r"language-[A-Za-z0-9_+#.-]{1,40}")


def _known_classes(tag, name, value):
    """bleach attribute filter: class only when every name in it is known; no other attribute."""
    return name == "class" and all(item in KNOWN_CLASSES or LANGUAGE_CLASS.fullmatch(item) for item in value.split())


ALLOWED_ATTRIBUTES = {
    "a": ["href", "title", "rel"],
    "abbr": ["title"],
    "code": _known_classes,
    "div": _known_classes,
    "span": _known_classes,
    "th": ["align"],
    "td": ["align"],
    "ol": ["start"],
}
ALLOWED_PROTOCOLS = {"http", "https", "mailto"}


# A URL's scheme as a browser reads it: after dropping ASCII tabs and newlines anywhere and spaces and controls
# around it (the URL standard's cleanup).
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_URL_NOISE = re.compile(r"[\t\n\r]")


def _safe_link(attrs, new=False):
    """Every link leaves with rel="nofollow noopener"; one whose scheme is not allowed is no link at all.

    bleach checks schemes, but reads "javascript:1" as a host and port, so it lets a scheme followed by
    digits through: checked again here, as the browser will read the href.
    """
    href = _URL_NOISE.sub("", attrs.get((None, "href"), "")).strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08 \x0b\x0c")
    scheme = _SCHEME.match(href)
    if scheme and scheme.group(1).lower() not in ALLOWED_PROTOCOLS:
        return None  # the link goes, its text stays
    attrs[(None, "rel")] = "nofollow noopener"
    return attrs


# bleach's Cleaner is not thread-safe: one per thread.
_local = threading.local()


def _cleaner():
    if not hasattr(_local, "cleaner"):
        _local.cleaner = bleach.Cleaner(
            tags=ALLOWED_TAGS,
            attributes=ALLOWED_ATTRIBUTES,
            protocols=ALLOWED_PROTOCOLS,
            strip=True,
            filters=[partial(LinkifyFilter, callbacks=[_safe_link], skip_tags={"pre", "code"})],
        )
    return _local.cleaner


def _render(text):
    html = markdown.markdown(text, extensions=EXTENSIONS, extension_configs=EXTENSION_CONFIGS, output_format="html")
    return _cleaner().clean(html)


@lru_cache(maxsize=1024)
def render_markdown(text):
    """Return the Markdown text as sanitised HTML, safe to put in a page.

    Cached: a page view re-renders every reply of the conversation, and
    rendering (Markdown, Pygments, bleach) costs far more than the lookup.
    """
    return Markup(_render(text))


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# A line that, after a blank line, may still belong to the block before it: indented, a quote, a list item.
_CONTINUES = re.compile(r"^(\s|>|[-*+](\s|$)|[0-9]+[.)](\s|$))")


def _fence_after(fence, line):
    """The code fence open after line ("```", "~~~~"...), given the one open before it (None: none)."""
    found = _FENCE.match(line)
    if found is None:
        return fence
    marker = found.group(1)
    if fence is None:
        return marker
    closes = marker[0] == fence[0] and len(marker) >= len(fence) and not line.strip()[len(marker) :].strip()
    return None if closes else fence


def _open_fence(lines):
    """The fence still open after these lines, or None."""
    fence = None
    for line in lines:
        fence = _fence_after(fence, line)
    return fence


def _last_break(text):
    """Where the last block that later text cannot change ends: the start of a line that begins a new
    block after a blank line, outside any fence (0 when there is none).

    A list item, a quote or an indented line after a blank line may still belong to the block before
    it (a loose list, say), so no break is made before one. A line that starts with a tag may open a
    raw HTML block, which Markdown runs on to its closing tag, blank lines and all: no break after one.
    """
    lines = text.split("\n")
    position, best, fence, blank = 0, 0, None, False
    for line in lines[:-1]:  # the last line may still be growing
        if fence is None and blank and line.strip() and not _CONTINUES.match(line):
            best = position
        if fence is None and line.lstrip().startswith("<"):
            break
        fence = _fence_after(fence, line)
        blank = fence is None and not line.strip()
        position += len(line) + 1
    return best


class LiveMarkdown:
    """A reply's Markdown rendered while it arrives, with the renderer and sanitiser of the final form.

    The text is split into blocks that later text cannot change, rendered once, and a tail (the block
    being written) that is rendered again as it grows; a code block still open is rendered closed, so
    it shows highlighted at once. Each update is a patch against what the page holds, small however
    long the reply gets:

        "<keep>\n<commit>\n<html>": keep the first <keep> units of the tail's HTML, append <html>,
        then move the first <commit> units of the result into the finished blocks.

    The unit is the UTF-16 code unit, a JavaScript string's (its length and slice()), not Python's
    code point: an emoji is one character here and two units in the page, and offsets counted in
    characters would cut the page's HTML short, inside a tag. The offsets always fall between
    characters, never inside one.

    Applied in order, the patches build exactly the HTML render_markdown gives for the text so far,
    which is what the page holds when the reply ends, so the finished reply does not jump.
    """

    def __init__(self):
        self.text = ""
        self.committed = 0  # characters of text in finished blocks
        self.tail_html = ""  # the tail's HTML as the page holds it (kept here as characters)

    def feed(self, piece):
        """Add text; return the patch that brings the page up to date, or None when nothing changed."""
        self.text += piece
        return self.patch()

    def patch(self):
        """The patch from what the page holds to the render of all the text so far (None when equal)."""
        tail_text = self.text[self.committed :]
        fence = _open_fence(tail_text.split("\n"))
        new = _render(tail_text + (f"\n{fence}" if fence else ""))
        commit, split = 0, (_last_break(tail_text) if fence is None else 0)
        if split:
            block_html = _render(tail_text[:split])
            # Only when the tail's render really is the finished blocks' render followed by the rest's.
            if new.startswith(block_html + "\n"):
                commit = len(block_html) + 1
                self.committed += split
        old, keep = self.tail_html, 0
        limit = min(len(old), len(new))
        while keep < limit and old[keep] == new[keep]:
            keep += 1
        if commit == 0 and keep == len(old) == len(new):
            return None
        self.tail_html = new[commit:]
        return f"{utf16_length(new[:keep])}\n{utf16_length(new[:commit])}\n{new[keep:]}"


def utf16_length(text):
    """How many UTF-16 code units text is: the length JavaScript gives the same string."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2
