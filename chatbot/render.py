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
    "a", "abbr", "b", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3", "h4",
    "h5", "h6", "hr", "i", "li", "ol", "p", "pre", "span", "strong", "sub", "sup", "table",
    "tbody", "td", "th", "thead", "tr", "ul",
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


def _safe_rel(attrs, new=False):
    """Every link leaves with rel="nofollow noopener"."""
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
            filters=[partial(LinkifyFilter, callbacks=[_safe_rel], skip_tags={"pre", "code"})],
        )
    return _local.cleaner


@lru_cache(maxsize=1024)
def render_markdown(text):
    """Return the Markdown text as sanitised HTML, safe to put in a page.

    Cached: a page view re-renders every reply of the conversation, and
    rendering (Markdown, Pygments, bleach) costs far more than the lookup.
    """
    html = markdown.markdown(text, extensions=EXTENSIONS, extension_configs=EXTENSION_CONFIGS,
                             output_format="html")
    return Markup(_cleaner().clean(html))
