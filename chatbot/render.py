"""Markdown to safe HTML: model output is untrusted, so it is rendered, then cleaned."""

import html
import re
import threading
from functools import lru_cache, partial

import bleach
import markdown
from bleach.linkifier import LinkifyFilter
from markupsafe import Markup
from pygments.token import STANDARD_TYPES

from .lengths import length  # in UTF-16 code units, as JavaScript counts

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


# The rule for a link's href, the same in app.js (allowedHTML), in the same words: read the URL as a browser
# does (ASCII tabs and line breaks dropped anywhere, then C0 controls and spaces dropped at either end); it is
# kept when it does not start with a scheme (a letter, then letters, digits, "+", "." or "-", then ":"), or when
# its scheme is http, https or mailto, in any case. So "10:30" or "./a:b" is a relative URL, and kept.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_URL_NOISE = re.compile(r"[\t\n\r]")
_URL_ENDS = "".join(chr(code) for code in range(0x21))  # C0 controls and space


def allowed_href(value):
    """Whether a link may point at value (the rule above)."""
    scheme = _SCHEME.match(_URL_NOISE.sub("", value).strip(_URL_ENDS))
    return scheme is None or scheme.group(1).lower() in ALLOWED_PROTOCOLS


def _safe_link(attrs, new=False):
    """Every link leaves with rel="nofollow noopener"; one whose href breaks the rule above is no link at all.

    bleach checks schemes, but reads "javascript:1" as a host and port, so it lets a scheme followed by
    digits through: checked again here, as the browser will read the href.
    """
    if not allowed_href(attrs.get((None, "href"), "")):
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
    rendered = markdown.markdown(text, extensions=EXTENSIONS, extension_configs=EXTENSION_CONFIGS, output_format="html")
    return _cleaner().clean(rendered)


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


def _open_fence_at(text):
    """(the fence still open at the end of text, where its opening line starts), or (None, None)."""
    fence, opened, position = None, None, 0
    for line in text.split("\n"):
        after = _fence_after(fence, line)
        if after is not None and fence is None:
            opened = position
        fence = after
        position += len(line) + 1
    return (fence, opened) if fence else (None, None)


def _highlight_end(text, opened):
    """Where the lines of the code block open at `opened` that are shown highlighted end: after its last
    complete line that is not blank (Markdown drops a code block's trailing blank lines), or after its fence's
    line when it has none; the rest is shown as plain text. None while the fence's line is being written."""
    body = text.find("\n", opened) + 1
    finished = text[: text.rfind("\n") + 1].rstrip()
    if body == 0:
        return None  # the fence's own line is still being written
    return body if len(finished) < body else text.index("\n", len(finished)) + 1


def _plain(text):
    """Code lines not highlighted yet, as the page shows them meanwhile: escaped text, one line break at the end."""
    escaped = html.escape(text)
    return escaped if escaped.endswith("\n") else escaped + "\n"


def _common_prefix(old, new):
    """How many characters old and new share at their start (slices compared in C, the range halved each time)."""
    low, high = 0, min(len(old), len(new))
    while low < high:
        middle = (low + high + 1) // 2
        if old[low:middle] == new[low:middle]:
            low = middle
        else:
            high = middle - 1
    return low


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
    being written) that is rendered again as it grows. Each update is a patch against what the page
    holds, small however long the reply gets:

        "<keep>\n<commit>\n<html>": keep the first <keep> units of the tail's HTML, append <html>,
        then move the first <commit> units of the result into the finished blocks.

    A code block still open is rendered closed, so it shows highlighted at once, but not on every
    update: its lines are highlighted again only once the lines shown plain since (escaped text, where
    the page's HTML has the block's closing tags) are a quarter of those highlighted, and when it
    closes. So a reply that is one long code block costs work in proportion to its length, as prose
    does, not to its length squared (Markdown, Pygments and bleach over the whole block each time).

    The unit is the UTF-16 code unit, a JavaScript string's (its length and slice()), not Python's
    code point: an emoji is one character here and two units in the page, and offsets counted in
    characters would cut the page's HTML short, inside a tag. The offsets always fall between
    characters, never inside one.

    Applied in order, the patches build exactly the HTML render_markdown gives for the text so far
    whenever no code block is open and no render is put off (always after the final piece), which is what
    the page holds when the reply ends, so the finished reply does not jump.
    """

    GROWTH = 4  # an open code block is highlighted again once its plain lines are 1/GROWTH of the rest
    # Any other tail longer than LARGE characters (a long list or table, a paragraph, a raw HTML block: none
    # can be cut into blocks) is rendered again only once it grew by 1/TAIL_GROWTH since its last render.
    LARGE, TAIL_GROWTH = 1500, 8

    def __init__(self):
        self.text = ""
        self.committed = 0  # characters of text in finished blocks
        self.tail_html = ""  # the tail's HTML as the page holds it (kept here as characters)
        # While a code block is open: (its fence, where its plain lines start in text, how many characters
        # are highlighted, the tail's HTML before and after where the plain lines go).
        self.code = None
        self.rendered = 0  # how long the tail was at its last render

    def feed(self, piece, final=False):
        """Add text; return the patch that brings the page up to date, or None when nothing changed (or the
        tail's render is put off). final: the reply's last piece, whose render is never put off."""
        self.text += piece
        return self.patch(final)

    def patch(self, final=False):
        """The patch from what the page holds to the render of all the text so far (None when equal, or put
        off: a long tail waits to grow, so a reply costs work in proportion to its length whatever it holds)."""
        new, commit, tail = self._plain_lines(), 0, len(self.text) - self.committed
        if new is None:
            if (
                not final
                and self.code is None
                and tail > self.LARGE
                and self.TAIL_GROWTH * (tail - self.rendered) < tail
            ):
                return None
            new, commit = self._render_tail()
            self.rendered = len(self.text) - self.committed
        keep = _common_prefix(self.tail_html, new)
        if commit == 0 and keep == len(self.tail_html) == len(new):
            return None
        self.tail_html = new[commit:]
        return f"{length(new[:keep])}\n{length(new[:commit])}\n{new[keep:]}"

    def _plain_lines(self):
        """The tail's HTML with the open code block's new lines added as plain text; None when the block
        closed, or is due to be highlighted again."""
        if self.code is None:
            return None
        fence, start, highlighted, before, after = self.code
        rest = self.text[start:]
        if self.GROWTH * len(rest) >= highlighted or _open_fence([fence, *rest.split("\n")]) != fence:
            return None
        return before + _plain(rest) + after

    def _render_tail(self):
        """(the tail rendered, how many characters of that HTML are finished blocks to commit)."""
        tail_text = self.text[self.committed :]
        fence, opened = _open_fence_at(tail_text)
        cut = _highlight_end(tail_text, opened) if fence else None
        new, self.code = None, None
        if cut is not None:
            new = self._open_block(tail_text, fence, opened, cut)
        if new is None:
            new = _render(tail_text + (f"\n{fence}" if fence else ""))
        commit, split = 0, _last_break(tail_text)
        if split:
            block_html = _render(tail_text[:split])
            # Only when the tail's render really is the finished blocks' render followed by the rest's.
            if new.startswith(block_html + "\n"):
                commit = len(block_html) + 1
                self.committed += split
        if self.code is not None:
            self.code[3] = self.code[3][commit:]
        return new, commit

    def _open_block(self, tail_text, fence, opened, cut):
        """The tail's HTML with its open code block's lines before cut highlighted, the rest plain (None when
        the render is not the shape expected); remembers where the plain lines go."""
        block = _render(tail_text[:cut] + fence)
        # The page's text goes inside the open block's <code>, before its last line break when it has no line.
        empty = tail_text.find("\n", opened) + 1 == cut
        where = block.rfind("\n</code></pre>" if empty else "</code></pre>")
        if where < 0:
            return None
        before, after = block[:where], block[where + empty :]
        self.code = [fence, self.committed + cut, cut - opened, before, after]
        return before + _plain(tail_text[cut:]) + after
