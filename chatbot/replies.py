"""Running the model for a pending reply: claim it, stream it, save it, title the conversation.

Nothing here knows about HTTP; chat.py turns the events into Server-Sent Events
(or, without JavaScript, waits for the last one).
"""

import queue
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .conversations import DONE, ERROR, PENDING, STOPPED, STREAMING, NotFound, now
from .llm import LLMError

TITLE_PROMPT = "Give this conversation a descriptive, 5-word title with no emojis"
TITLE_WORDS = 6
HEARTBEAT_SECONDS = 10
TICK_SECONDS = 0.25
STOP_CHECK_SECONDS = 1.0
_NOTHING = object()
# A claim older than this belongs to a worker that died: another may take it over.
STALE_CLAIM = timedelta(minutes=10)
POLL_SECONDS = 0.5
EMPTY_REPLY = "The model sent an empty reply (the conversation may be too long for it). Please retry."


@dataclass
class Settings:
    """What shapes a model call, from the app's configuration."""

    temperature: float = 0.5
    top_p: float = 0.7
    max_tokens: int = 1024
    context_chars: int = 12000
    system_prompt: str | None = None
    seed: int | None = None

    @classmethod
    def from_config(cls, config):
        """Read the settings from a Flask config mapping."""
        return cls(temperature=config["TEMPERATURE"], top_p=config["TOP_P"],
                   max_tokens=config["MAX_TOKENS"], context_chars=config["CONTEXT_CHARS"],
                   system_prompt=config["SYSTEM_PROMPT"], seed=config.get("LLM_SEED"))

    def params(self):
        """Keyword arguments for LLM.stream()."""
        return {"temperature": self.temperature, "top_p": self.top_p,
                "max_tokens": self.max_tokens, "seed": self.seed}


def build_prompt(history, model, settings):
    """The messages sent to the model: the newest turns that fit the budget, and the system prompt.

    The oldest turns are dropped first; the last (the question) is always kept.
    Some models (Gemma) refuse a system role, so for them the system prompt
    is folded into the first user turn.
    """
    kept, used = [], 0
    for turn in reversed(history):
        used += len(turn["content"])
        if kept and used > settings.context_chars:
            break
        kept.append(dict(turn))
    kept.reverse()
    while kept and kept[0]["role"] != "user":  # a chat template wants the user first
        kept.pop(0)
    if settings.system_prompt:
        if "gemma" in (model or "").lower():
            kept[0]["content"] = f"{settings.system_prompt}\n\n{kept[0]['content']}"
        else:
            kept.insert(0, {"role": "system", "content": settings.system_prompt})
    return kept


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
    return (title[:60] + "…") if len(title) > 60 else title or "Untitled chat"


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


def _is_stale(message):
    if not message.claimed_at:
        return True
    claimed = datetime.fromisoformat(message.claimed_at)
    return datetime.now(timezone.utc) - claimed > STALE_CLAIM


def _produce(llm, messages, model, params, pieces, cancel):
    """Run in a thread: put each piece on the queue, then None, or the LLMError raised."""
    stream = llm.stream(messages, model, **params)
    try:
        for piece in stream:
            if cancel.is_set():
                break
            pieces.put(piece)
        pieces.put(None)
    except LLMError as error:
        pieces.put(error)
    except Exception as error:  # an unexpected failure must still end the reply, and be logged
        pieces.put(LLMError(repr(error)))
        raise
    finally:
        stream.close()  # abandons the model call (closes the HTTP stream / stops llama.cpp)


def run_reply(conversations, llm, cid, mid, settings):
    """Generate the pending reply mid of conversation cid; yield events as they happen.

    Events are (kind, value) pairs: ("claimed", Conversation) once the model
    is asked, ("token", text), ("heartbeat", None), ("final", (Conversation,
    Message)) and then, for a new conversation, ("title", Conversation). NotFound is raised at the first step when the
    reply does not exist.
    A reply that already exists is yielded at once and the model is not run
    again; one being generated by another worker is waited for. When the
    consumer goes away (GeneratorExit) or the user presses stop (a flag in
    storage, checked every second), what was generated is saved as stopped.
    """
    cancel = threading.Event()
    claimed = False

    def claim(conversation):
        nonlocal claimed
        message = conversation.message(mid)
        if message.role != "assistant":
            raise NotFound(mid)
        if message.status == PENDING or (message.status == STREAMING and _is_stale(message)):
            message.status, message.claimed_at, message.content, message.error = STREAMING, now(), "", None
            claimed = True
            return True
        claimed = False
        return False

    conversation = conversations.update(cid, claim, touch=False)
    if not claimed:
        # Another worker is generating it: wait for its result (a worker that died leaves a
        # stale claim, which the browser's next connection takes over).
        while conversation.message(mid).status == STREAMING and not _is_stale(conversation.message(mid)):
            time.sleep(POLL_SECONDS)
            conversation = conversations.get(cid)
            yield "heartbeat", None
        yield "final", (conversation, conversation.message(mid))
        return

    message = conversation.message(mid)
    prompt = build_prompt(conversation.history_before(mid), message.model, settings)
    pieces = queue.Queue()
    producer = threading.Thread(
        target=_produce, args=(llm, prompt, message.model, settings.params(), pieces, cancel), daemon=True
    )
    producer.start()
    parts, status, error = [], STOPPED, None
    yield "claimed", conversation
    quiet_since = last_stop_check = time.monotonic()
    try:
        while True:
            try:
                piece = pieces.get(timeout=TICK_SECONDS)
            except queue.Empty:
                piece = _NOTHING
            if time.monotonic() - last_stop_check >= STOP_CHECK_SECONDS:
                # The stop button may have been pressed in another process: it is a flag in storage.
                last_stop_check = time.monotonic()
                if conversations.get(cid).message(mid).stop_requested:
                    break
            if piece is _NOTHING:
                if time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
                    quiet_since = time.monotonic()
                    yield "heartbeat", None
                continue
            quiet_since = time.monotonic()
            if piece is None:
                status = DONE if "".join(parts).strip() else ERROR
                error = None if status == DONE else EMPTY_REPLY
                break
            if isinstance(piece, LLMError):
                status, error = ERROR, piece.user_message
                break
            parts.append(piece)
            yield "token", piece
    finally:
        # Runs on success, on error, on stop and when the client went away mid-stream;
        # cancel makes the producer abandon the model call.
        cancel.set()
        final = _save(conversations, cid, mid, "".join(parts), status, error)
    yield "final", (final, final.message(mid))

    if final.title is None and status == DONE:
        title = make_title(llm, message.model, final.first_user_text, "".join(parts), settings)
        titled = conversations.update(cid, lambda conversation: _set_auto_title(conversation, title))
        yield "title", titled


def _save(conversations, cid, mid, content, status, error):
    def finish(conversation):
        message = conversation.message(mid)
        message.content, message.status, message.error, message.claimed_at = content, status, error, None

    return conversations.update(cid, finish)


def _set_auto_title(conversation, title):
    if conversation.title is not None:  # never overwrite a title, least of all one the user set
        return False
    conversation.title, conversation.title_source = title, "auto"
    return True


def reset_reply(conversations, cid, mid):
    """Make a finished reply pending again (retry / regenerate); return the conversation.

    A failed or stopped reply can be retried anywhere; a finished one only when it is
    the last (NotFound otherwise). A reply already pending or streaming is left alone.
    """

    def reset(conversation):
        message = conversation.message(mid)
        if message.role != "assistant" or (message.status == DONE and mid != conversation.last_reply_id):
            raise NotFound(mid)
        if message.status in (PENDING, STREAMING):
            return False
        message.status, message.content, message.error, message.stop_requested = PENDING, "", None, False
        return True

    return conversations.update(cid, reset)
