"""Conversation titles: ask the model with the original prompt, clean its answer, fall back to the user's words."""

import re

from .conversations import FORKED, MAX_TITLE_CHARS, UNTITLED
from .llm import LLMError

TITLE_PROMPT = "Give this conversation a descriptive, 5-word title with no emojis"
TITLE_WORDS = 6

# Emojis, and what a model's broken output can hold: half an emoji (a lone surrogate, which no JSON
# document can store) and the replacement character.
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\ufe0f\u200d\ud800-\udfff\ufffd]")
_THINK = re.compile(r"<think>.*?(</think>|$)", re.S | re.I)
_QUOTES = " \"'`“”‘’*_#"
# A first line that introduces the title on the next one: "Here's a 5-word description of the conversation:".
_INTRO_LINE = re.compile(r"\b(title|here|sure|description|summary|suggest)", re.I)
# Openings that are not part of a title. Each is removed, repeatedly, from the start of the answer.
_PREAMBLES = [
    re.compile(pattern, re.I)
    for pattern in (
        r"^(sure|certainly|of course|okay|ok|great|absolutely)\b[!.,]*\s*",
        r"^here(?:'s| is| are)\b[^:]*:\s*",  # "Here's a 5-word title: X"
        r"^[^:]*\b(title|topic|subject|description|summary)\b[^:]*:\s*",  # "Title: X", "Suggested title: X"
        r"^(the|this) (conversation|chat|discussion)(?: is| was)? (about|on|regarding|around)\s+",  # "… is about X"
        r"^(the|this) (conversation|chat|discussion)\s*:\s*",
        r"^(?:[A-Z]|\d+)[.:)]\s+",  # "A: X", "1. X"
    )
]
# A title never ends on these: they are what is left of a sentence cut short.
_DANGLING = frozenset(
    """a an the and or but nor yet so of to in on at by for with about from into than as that which
    who whose is are was were be been its their his her my your our this these those""".split()
)
# What is left is a sentence about the exchange, or the model talking, not a title.
_NOT_A_TITLE = re.compile(r"\b(conversation|title|\d+-word)\b|^(i|i'm|i am|as an?|sorry|hello|hi)\b", re.I)


def _trim(words):
    """Drop the words a cut sentence leaves dangling at the end, and trailing punctuation."""
    while words and words[-1].lower().strip(".,;:!?-–—") in _DANGLING:
        words = words[:-1]
    return " ".join(words).rstrip(".,;:!?-–— ").strip(_QUOTES)


def clean_title(text):
    """Make a model's title answer short and plain, or return "" when what it said is not a title.

    Drops think-tags, emojis, quotes, labels and preambles ("Sure! Here's a title:",
    "Title:", "This conversation is about"), keeps the first clause and at most
    TITLE_WORDS words. An answer that is a sentence about the conversation ("The
    conversation was a light-hearted and"), the model speaking ("I'm sorry, …")
    or a single word is not a title: the caller falls back to the user's words.
    """
    text = _EMOJI.sub("", _THINK.sub("", text or ""))
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":") and _INTRO_LINE.search(lines[0]):
        lines.pop(0)
    text = lines[0].strip(_QUOTES) if lines else ""
    changed = True
    while changed:
        before = text
        for preamble in _PREAMBLES:
            text = preamble.sub("", text).strip(_QUOTES)
        changed = text != before
    text = re.sub(r"\([^)]*(\)|$)", "", text)  # asides in parentheses, closed or cut off
    text = re.split(r"[,;.!?—–]\s|[,;!?]$|\.$", text)[0]  # the first clause
    head, colon, tail = text.partition(":")
    if colon and len(head.split()) >= 2:  # "TCP vs UDP: a simple yet complex debate" -> "TCP vs UDP"
        text = head
    title = _trim(text.split()[:TITLE_WORDS])
    if len(title.split()) < 2 or _NOT_A_TITLE.search(title):
        return ""
    return title[0].upper() + title[1:]


def fallback_title(user_text):
    """The first words of the user's message, when the model gives no usable title."""
    words = user_text.split()
    title = " ".join(words[:TITLE_WORDS]) if len(words) <= TITLE_WORDS else _trim(words[:TITLE_WORDS]) or words[0]
    return (title[:60] + "…") if len(title) > 60 else title or UNTITLED


def make_title(llm, model, user_text, reply_text, settings):
    """Ask the model for a title of the first exchange; fall back to the user's first words."""
    messages = [
        {"role": "user", "content": user_text[:2000]},
        {"role": "assistant", "content": reply_text[:2000]},
        {"role": "user", "content": TITLE_PROMPT},
    ]
    try:
        answer = llm.complete(messages, model, temperature=0.2, top_p=settings.top_p, max_tokens=24, seed=settings.seed)
    except LLMError:
        answer = ""
    title = clean_title(answer) or fallback_title(user_text)
    return title[:MAX_TITLE_CHARS]  # the same bound as a title the user types


def wants_title(conversation):
    """True until the conversation has a title of its own: none yet, or a fork's "Fork of …"."""
    return conversation.title is None or conversation.title_source == FORKED


def title_words(conversation, mid):
    """The user's words a title is made of, with reply mid: the first on its path; in a fork, those reply mid
    answers (its first own exchange: the path before it was copied from another conversation)."""
    if conversation.title_source == FORKED:
        return conversation.message(conversation.message(mid).parent).content
    return conversation.first_user_text_to(mid)
