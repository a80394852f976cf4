"""Conversation titles: ask the model with the original prompt, clean its answer, fall back to the user's words."""

import re

from .conversations import UNTITLED
from .llm import LLMError

TITLE_PROMPT = "Give this conversation a descriptive, 5-word title with no emojis"
TITLE_WORDS = 6

_EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F\u200D]")
_THINK = re.compile(r"<think>.*?(</think>|$)", re.S | re.I)


def clean_title(text):
    """Make a model's title answer short and plain: no quotes, emojis, labels or final dot."""
    text = _THINK.sub("", text or "")
    text = _EMOJI.sub("", text)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):  # "Here is a title:" then the title
        lines.pop(0)
    text = lines[0] if lines else ""
    # "Title: X", "Here's a 5-word descriptive title: X"
    text = re.sub(r"^[^:]*\btitle\b[^:]*:\s*", "", text, flags=re.I)
    text = text.replace("*", "").replace("#", "").strip(" \"'`“”‘’")
    words = text.split()[:TITLE_WORDS]
    return " ".join(words).rstrip(".,;:!?-").strip(" \"'`“”‘’")


def fallback_title(user_text):
    """The first words of the user's message, when the model gives no usable title."""
    words = user_text.split()[:TITLE_WORDS]
    title = " ".join(words)
    return (title[:60] + "…") if len(title) > 60 else title or UNTITLED


def make_title(llm, model, user_text, reply_text, settings):
    """Ask the model for a title of the first exchange; fall back to the user's first words."""
    messages = [
        {"role": "user", "content": user_text[:2000]},
        {"role": "assistant", "content": reply_text[:2000]},
        {"role": "user", "content": TITLE_PROMPT},
    ]
    try:
        answer = llm.complete(messages, model, temperature=0.2, top_p=settings.top_p, max_tokens=24,
                              seed=settings.seed)
    except LLMError:
        answer = ""
    return clean_title(answer) or fallback_title(user_text)
