"""A reply's job: run the model, log its events, save its text, title the conversation.

A job belongs to the server, not to any request: sending starts it, and the
event streams only read its log (chatbot/live/). So a reload, a closed tab or
a dropped connection changes nothing for the reply; only Stop stops it.
Nothing here knows about HTTP.
"""

import logging
import queue
import re
import threading
import time
from dataclasses import dataclass

from . import events, logs
from .config import GENERATION_DEFAULTS
from .conversations import DONE, ERROR, INTERRUPTED, SAVE_SECONDS, STOPPED, Conversations, NotFound
from .live import LiveFull, LiveUnavailable
from .llm import LLMError
from .render import LiveMarkdown
from .storage import StorageError
from .titles import make_title

logger = logging.getLogger(__name__)

# How often a job looks for Stop (and for a shutdown): the model call is abandoned within this.
STOP_POLL_SECONDS = 0.1
# Pieces that arrive within this long of the last render are rendered together: one event instead of
# several, each with its SSE framing (bench: bytes sent per reply against its final HTML).
RENDER_SECONDS = 0.1
EMPTY_REPLY = "The model sent an empty reply (the conversation may be too long for it). Please retry."
LIVE_DOWN = "Live replies are unavailable right now, so this reply was cut short. What was generated is kept."
LIVE_FULL = (
    "The server has no room left for live replies right now, so this reply was cut short. "
    "What was generated is kept. Please retry in a few minutes."
)
SHUTDOWN_NOTE = "The server restarted before the reply finished. What was generated is kept."
UNSAVED_REPLY = "The reply could not be saved: conversations cannot be reached right now. Please retry."
SAVE_FAILED = "The reply could not be saved because of an error on our side. Please retry."
_NOTHING = object()
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass
class Settings:
    """What shapes a model call, from the app's configuration."""

    temperature: float = GENERATION_DEFAULTS["TEMPERATURE"]
    top_p: float = GENERATION_DEFAULTS["TOP_P"]
    max_tokens: int = GENERATION_DEFAULTS["MAX_TOKENS"]
    context_chars: int = GENERATION_DEFAULTS["CONTEXT_CHARS"]
    system_prompt: str | None = None
    seed: int | None = None

    @classmethod
    def from_config(cls, config):
        """Read the settings from a Flask config mapping."""
        return cls(
            temperature=config["TEMPERATURE"],
            top_p=config["TOP_P"],
            max_tokens=config["MAX_TOKENS"],
            context_chars=config["CONTEXT_CHARS"],
            system_prompt=config["SYSTEM_PROMPT"],
            seed=config.get("LLM_SEED"),
        )

    def params(self):
        """Keyword arguments for LLM.stream()."""
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens, "seed": self.seed}


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


def reply_key(cid, mid):
    """The name of a reply's log and stop signal in the live backend."""
    return f"{cid}:{mid}"


def _whole_characters(text):
    """(text, a high surrogate held back): no piece the job takes carries half a character.

    A model may send an emoji as a surrogate pair split across two chunks (a JSON stream escaping
    "\\ud83d" in one and "\\ude00" in the next). A trailing high surrogate waits for the next piece;
    the pair is joined, and any surrogate still alone becomes U+FFFD, which can be encoded.
    """
    held = ""
    if text and "\ud800" <= text[-1] <= "\udbff":
        text, held = text[:-1], text[-1]
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text, held


def _produce(llm, messages, model, params, pieces, cancel):
    """Run in a thread: put each piece on the queue, then None, or the LLMError raised."""
    stream = llm.stream(messages, model, **params)
    held = ""  # half a character, whose other half is in the next piece
    try:
        for piece in stream:
            if cancel.is_set():
                break
            piece, held = _whole_characters(held + piece)
            pieces.put(piece)
        if held:
            pieces.put("\ufffd")  # a character whose second half never came
        pieces.put(None)
    except LLMError as error:
        pieces.put(error)
    except Exception as error:  # an unexpected failure must still end the reply, and be logged
        pieces.put(LLMError(repr(error)))
        raise
    finally:
        stream.close()  # abandons the model call (closes the HTTP stream / stops llama.cpp)


class Job:
    """One reply being generated in this process."""

    def __init__(self, replies, llm, conversations, cid, mid, conversation=None, on_end=None):
        self.replies = replies
        self.llm = llm
        self.conversations = conversations
        self.cid, self.mid = cid, mid
        self.conversation = conversation  # as just stored, when the caller has it: no read before the model starts
        self.key = reply_key(cid, mid)
        self.live = replies.live
        self.live_down = self.live_full = False  # full: Redis refused to store more
        self.thread = threading.Thread(target=self.run, name=f"reply-{mid}", daemon=True)
        self.on_end = on_end  # on_end(pieces) once the reply ends (before its title), whatever the outcome
        self.pieces = 0  # the model's pieces (about one token each), for the user's daily budget
        self.ended, self.logged = False, None  # the reply is over; the id of the last event this job logged

    def emit(self, kind, **data):
        """Log an event for the streams (True when logged); once the live backend failed, the job goes on without it."""
        # A full Redis: the backend freed this reply's log, so its end (the error) fits and tells its readers at once.
        if (self.live_down and not (self.live_full and kind in (events.FINAL, events.DONE))) or not self._log_is_ours():
            return False
        try:
            self.logged = self.live.append(self.key, {"kind": kind, **data})
            self.live_down = False
        except LiveUnavailable as error:
            logger.error("live backend failed during a reply: %s", error)
            self.live_down, self.live_full = True, isinstance(error, LiveFull)
        return not self.live_down

    def _log_is_ours(self):
        """False once the reply is over and a new generation of it (Retry, Regenerate) has begun the log,
        in any process: this job's title and end would end that generation's streams."""
        if not self.ended:
            return True
        try:
            last = self.live.last(self.key)
        except LiveUnavailable:
            return True  # append will say
        return last is not None and last[0] == self.logged

    def run(self):
        """Generate, log and save the reply; never raises."""
        try:
            self._run()
        except NotFound:
            pass  # the conversation was deleted, or the message edited away, while the reply ran
        except Exception:
            logger.exception("reply job failed")
        finally:
            if self.emit(events.DONE):
                try:
                    self.live.finish(self.key)
                except LiveUnavailable:
                    pass
            self.replies.forget(self)
            self._ended()  # unless the reply's end already did

    def _run(self):
        started = time.monotonic()
        conversation = self.conversation or self.conversations.get(self.cid)
        reply = conversation.reply(self.mid)
        settings = self.replies.settings
        prompt = build_prompt(conversation.history_before(self.mid), reply.model, settings)
        pieces, cancel = queue.Queue(), threading.Event()
        threading.Thread(
            target=_produce, args=(self.llm, prompt, reply.model, settings.params(), pieces, cancel), daemon=True
        ).start()
        self.emit(events.STARTED)  # after the model was asked: the streams' first work overlaps with the model's
        parts, status, error, first_piece_at, failure = [], STOPPED, None, None, None
        markdown, unrendered, last_render = LiveMarkdown(), "", 0.0
        last_save = time.monotonic()
        try:
            while True:
                wait = RENDER_SECONDS / 2 if unrendered else STOP_POLL_SECONDS
                try:
                    piece = pieces.get(timeout=wait)
                except queue.Empty:
                    piece = _NOTHING
                if unrendered and (piece is _NOTHING or time.monotonic() - last_render >= RENDER_SECONDS):
                    self._render(markdown, unrendered)
                    unrendered, last_render = "", time.monotonic()
                if self.live_down:
                    status, error = ERROR, LIVE_FULL if self.live_full else LIVE_DOWN
                    break
                if self._stop_requested():
                    status = STOPPED
                    break
                if self.replies.past_deadline():
                    status = INTERRUPTED
                    break
                if time.monotonic() - last_save >= SAVE_SECONDS:
                    # The text so far, and the lease that tells readers this job is alive.
                    self._save_progress("".join(parts))
                    last_save = time.monotonic()
                if piece is _NOTHING:
                    continue
                if piece is None:
                    status, error = (DONE, None) if "".join(parts).strip() else (ERROR, EMPTY_REPLY)
                    break
                if isinstance(piece, LLMError):
                    status, error, failure = ERROR, piece.user_message, piece
                    logger.warning("model error (%s): %s", type(piece).__name__, piece)
                    break
                if first_piece_at is None:
                    first_piece_at = last_render = time.monotonic()
                    self._render(markdown, piece)  # the first piece shows at once
                else:
                    unrendered += piece
                parts.append(piece)
        finally:
            cancel.set()  # the producer abandons the model call at its next piece
            self.pieces = len(parts)
        if unrendered:
            self._render(markdown, unrendered)
        text = "".join(parts)
        if status == INTERRUPTED:
            error = SHUTDOWN_NOTE
        try:
            conversation = self.conversations.finish_reply(self.cid, self.mid, text, status, error)
        except StorageError as save_error:
            logger.error("could not save a reply: %s", save_error)
            self.emit(events.FINAL, unsaved=UNSAVED_REPLY)
            return
        except NotFound:
            raise
        except Exception:  # a fault of ours, not storage's: the reply must still end, said, and logged
            logger.exception("could not save a reply")
            self._save_failed(text)
            return
        self._ended()  # saved: its user may ask for another reply (once the page knows) while the title is made
        self.emit(events.FINAL)
        outcome = logs.outcome_of(failure) if failure else ("error" if status == ERROR else status)
        self.replies.log_reply(
            reply.model, started, first_piece_at, len(parts), outcome, self.conversations.uid, conversation=self.cid
        )
        # A stopped first reply with some text is an exchange too: the conversation gets its title.
        if conversation.title is None and (status == DONE or (status == STOPPED and text.strip())):
            title = make_title(self.llm, reply.model, conversation.first_user_text, text, settings)
            self.conversations.set_auto_title(self.cid, title)
            self.emit(events.TITLE)

    def _ended(self):
        """The reply is over: on_end(pieces) once (the user's reply slot back, the pieces charged)."""
        on_end, self.on_end, self.ended = self.on_end, None, True
        if on_end is not None:
            on_end(self.pieces)

    def _render(self, markdown, text):
        patch = markdown.feed(text)
        if patch is not None:
            self.emit(events.RENDER, patch=patch)

    def _save_failed(self, text):
        """The final save failed unexpectedly: save the reply again as an error, with its text made safe to
        encode; when even that fails, the bubble says the reply was not saved."""
        try:
            safe = text.encode("utf-8", "replace").decode("utf-8")
            self.conversations.finish_reply(self.cid, self.mid, safe, ERROR, SAVE_FAILED)
        except NotFound:
            raise
        except Exception:
            logger.exception("could not save a reply as failed")
            self.emit(events.FINAL, unsaved=SAVE_FAILED)
            return
        self.emit(events.FINAL)

    def _stop_requested(self):
        try:
            return self.live.stop_requested(self.key)
        except LiveUnavailable:
            self.live_down = True
            return False

    def _save_progress(self, text):
        try:
            self.conversations.save_progress(self.cid, self.mid, text)
        except StorageError as failure:  # the final save may still succeed
            logger.warning("could not save a reply's progress: %s", failure)


class Replies:
    """Starts reply jobs, and keeps track of those running in this process (for a graceful shutdown)."""

    def __init__(self, live, settings, log_reply=logs.log_reply):
        self.live = live
        self.settings = settings
        self._log_reply = log_reply
        self._jobs = set()
        self._lock = threading.Lock()
        self._deadline = None

    def start(self, store, llm, uid, cid, mid, on_end=None, conversation=None):
        """Generate reply mid (already marked streaming in storage) in a job of its own; on_end(pieces) at its end.

        conversation, when given, is the conversation as just stored (it saves a read before the model starts).
        """
        job = Job(self, llm, Conversations(store, uid), cid, mid, conversation, on_end)
        try:
            self.live.start(job.key)
        except LiveUnavailable as error:
            logger.error("live backend unavailable: %s", error)
            job.live_down = True
        with self._lock:
            self._jobs.add(job)
        job.thread.start()
        return job

    def forget(self, job):
        """A job ended."""
        with self._lock:
            self._jobs.discard(job)

    def running(self):
        """How many jobs run in this process."""
        with self._lock:
            return len(self._jobs)

    def stop(self, conversations, cid, mid):
        """Stop a reply wherever its job runs; a reply whose job died is stopped in storage."""
        conversation = conversations.stop_reply(cid, mid)  # NotFound for a reply that is not this user's
        self.live.request_stop(reply_key(cid, mid))
        return conversation

    def begin_shutdown(self, grace_seconds):
        """The process is stopping: jobs may finish within grace_seconds, then save what they have."""
        self._deadline = time.monotonic() + grace_seconds

    @property
    def shutting_down(self):
        """True once the process began to stop."""
        return self._deadline is not None

    def past_deadline(self):
        """True when a stopping process's jobs must end now."""
        return self._deadline is not None and time.monotonic() >= self._deadline

    def wait_for_jobs(self, timeout):
        """Wait up to timeout seconds for this process's jobs to end; return how many still run."""
        deadline = time.monotonic() + timeout
        with self._lock:
            jobs = list(self._jobs)
        for job in jobs:
            job.thread.join(max(0.0, deadline - time.monotonic()))
        return self.running()

    def log_reply(self, model, started, first_piece_at, pieces, outcome, uid, **ids):
        """One line per reply for the operator: timings, size and outcome, never its content."""
        duration_ms = round((time.monotonic() - started) * 1000)
        ttft_ms = round((first_piece_at - started) * 1000) if first_piece_at else None
        self._log_reply(
            model=model, ttft_ms=ttft_ms, pieces=pieces, duration_ms=duration_ms, outcome=outcome, uid=uid, **ids
        )


def init_app(app):
    """Bind the reply jobs to the app (they use its live backend and generation settings)."""
    app.extensions["replies"] = Replies(app.extensions["live"], Settings.from_config(app.config))


def get_replies():
    """Return the current app's Replies."""
    from flask import current_app

    return current_app.extensions["replies"]
