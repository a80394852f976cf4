"""A reply's job: run the model, log its events, save its text, title the conversation.

This is the writer, one of the resumable protocol's four parts: the job logs each event in the
reply's log (live/), in the wire format of events.py, and the reader (stream.py) sends the log to
every stream that follows the reply. A job belongs to the server, not to any request: sending
starts it, and the streams only read its log. So a reload, a closed tab or a dropped connection
changes nothing for the reply; only Stop stops it. Nothing here knows about HTTP.
"""

import logging
import queue
import threading
import time
from dataclasses import dataclass

from . import events, filestore, logs
from .conversations import DONE, ERROR, INTERRUPTED, STOPPED, Conversations, NotFound
from .generation import Settings, build_prompt, start_model
from .live import LiveFull, LiveUnavailable
from .llm import LLMError
from .render import LiveMarkdown
from .storage import StorageError
from .titles import make_title, title_words, wants_title

logger = logging.getLogger(__name__)

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


def reply_key(cid, mid):
    """The name of a reply's log and stop signal in the live backend."""
    return f"{cid}:{mid}"


def _next_piece(pieces, wait):
    """The producer's next piece, or _NOTHING when none came within wait seconds."""
    try:
        return pieces.get(timeout=wait)
    except queue.Empty:
        return _NOTHING


def _model_end(piece, text):
    """(status, error, failure) once the model ended: None after its last piece, or the LLMError it raised."""
    if piece is None:
        return (DONE, None, None) if text.strip() else (ERROR, EMPTY_REPLY, None)
    logger.warning("model error (%s): %s", type(piece).__name__, piece)
    return ERROR, piece.user_message, piece


@dataclass(frozen=True)
class Pace:
    """How a reply's job keeps time, in seconds: settings that config.py describes and checks."""

    save: float  # REPLY_SAVE_SECONDS: the text so far is saved this often, which renews the job's lease
    lease: float  # REPLY_LEASE_SECONDS: a reply's lease not renewed for this long belongs to a dead job
    stop_poll: float  # STOP_POLL_SECONDS: how often the job looks for Stop (and for a shutdown)
    render: float  # RENDER_SECONDS: pieces within this long of the last render are rendered together

    @classmethod
    def from_config(cls, config):
        """Read the pace from a Flask config mapping."""
        names = ("REPLY_SAVE_SECONDS", "REPLY_LEASE_SECONDS", "STOP_POLL_SECONDS", "RENDER_SECONDS")
        return cls(*(config[name] for name in names))


@dataclass
class Outcome:
    """How a reply's generation ended: what is saved (text, status, error) and what is logged."""

    status: str = STOPPED
    error: str | None = None  # what the reply says went wrong
    failure: LLMError | None = None  # the model's own error, whose kind the reply's log line gives
    text: str = ""
    pieces: int = 0  # the model's pieces (about one token each)
    first_piece_at: float | None = None


class _Patches:
    """The reply's Markdown as patches for its log: the first piece at once, then those within `seconds` of the
    last render together: one event, not several each with its SSE framing (bench: bytes sent per reply)."""

    def __init__(self, emit, seconds):
        self.emit, self.seconds, self.markdown = emit, seconds, LiveMarkdown()
        self.pending, self.rendered_at = "", None

    def wait(self, otherwise):
        """How long to wait for the next piece: less while text waits to be rendered."""
        return self.seconds / 2 if self.pending else otherwise

    def add(self, piece):
        """Take a piece: the first shows at once, the next ones wait to be rendered together."""
        if self.rendered_at is None:
            self.rendered_at = time.monotonic()
            self._feed(piece)
        else:
            self.pending += piece

    def render_if_due(self, nothing_came):
        """Render what waits when no piece came meanwhile, or `seconds` after the last render."""
        if self.pending and (nothing_came or time.monotonic() - self.rendered_at >= self.seconds):
            self.render()

    def render(self, final=False):
        """Render what waits, now; final: the reply's last render (of a tail whose render LiveMarkdown put off)."""
        if self.pending or final:
            text, self.pending = self.pending, ""
            self._feed(text, final)
            self.rendered_at = time.monotonic()

    def _feed(self, text, final=False):
        patch = self.markdown.feed(text, final)
        if patch is not None:
            self.emit(events.RENDER, patch=patch)


class Job:
    """One reply being generated in this process: its generation, its outcome saved, its finish.

    It is given what it uses: the live backend, the model call's settings, its Pace, past_deadline() (True
    when a stopping process's jobs must end now) and log_reply (logs.log_reply: one line per reply).
    """

    def __init__(
        self, live, llm, conversations, cid, mid, *, settings, pace, past_deadline, log_reply, conversation, on_end
    ):
        self.live, self.llm, self.conversations = live, llm, conversations
        self.settings, self.pace, self.past_deadline, self.log_reply = settings, pace, past_deadline, log_reply
        self.cid, self.mid = cid, mid
        self.key = reply_key(cid, mid)
        self.conversation = conversation  # as just stored, when the caller has it: no read before the model starts
        self.on_end = on_end  # on_end(pieces) once the reply ends (before its title), whatever the outcome
        self.live_down = self.live_full = False  # full: Redis refused to store more
        self.pieces = 0  # the model's pieces, once the generation ended
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
            started = time.monotonic()
            conversation = self.conversation or self.conversations.get(self.cid)
            model = conversation.reply(self.mid).model
            seeing = self.llm.seeing_models(self.settings.vision_models)  # VISION_MODELS, and the Hub's answer
            turns = filestore.turns_before(self.conversations, conversation, self.mid, seeing, self.settings.images)
            outcome = self._generate(build_prompt(turns, model, self.settings, conversation.instructions), model)
            saved = self._save(outcome)
            if saved is not None:
                self._finish(saved, model, outcome, started)
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
            self._ended()  # unless the reply's end already did

    def _generate(self, prompt, model):
        """Run the model, logging the reply's text as it comes, until the model ends or fails or the job must
        stop (Stop, a shutdown, the live backend down); return the Outcome. The text is saved meanwhile."""
        pieces, cancel = start_model(self.llm, prompt, model, self.settings)
        self.emit(events.STARTED)  # after the model was asked: the streams' first work overlaps with the model's
        outcome, parts, patches = Outcome(), [], _Patches(self.emit, self.pace.render)
        last_save = time.monotonic()
        try:
            while True:
                piece = _next_piece(pieces, patches.wait(self.pace.stop_poll))
                patches.render_if_due(nothing_came=piece is _NOTHING)
                end = self._must_end()
                if end:
                    outcome.status, outcome.error = end
                    break
                if time.monotonic() - last_save >= self.pace.save:
                    # The text so far, and the lease that tells readers this job is alive.
                    self._save_progress("".join(parts))
                    last_save = time.monotonic()
                if piece is _NOTHING:
                    continue
                if piece is None or isinstance(piece, LLMError):
                    outcome.status, outcome.error, outcome.failure = _model_end(piece, "".join(parts))
                    break
                if outcome.first_piece_at is None:
                    outcome.first_piece_at = time.monotonic()
                patches.add(piece)
                parts.append(piece)
        finally:
            cancel.set()  # the producer abandons the model call at its next piece
            self.pieces = outcome.pieces = len(parts)
        patches.render(final=True)
        outcome.text = "".join(parts)
        return outcome

    def _must_end(self):
        """(status, error) when the job must end before the model does, else None."""
        if self.live_down:
            return ERROR, LIVE_FULL if self.live_full else LIVE_DOWN
        if self._stop_requested():
            return STOPPED, None
        if self.past_deadline():
            return INTERRUPTED, SHUTDOWN_NOTE
        return None

    def _save(self, outcome):
        """Save the reply as it ended; return the conversation, or None when it could not be saved (the
        reply's bubble then says so)."""
        try:
            return self.conversations.finish_reply(self.cid, self.mid, outcome.text, outcome.status, outcome.error)
        except StorageError as save_error:
            logger.error("could not save a reply: %s", save_error)
            self.emit(events.FINAL, unsaved=UNSAVED_REPLY)
        except NotFound:
            raise
        except Exception:  # a fault of ours, not storage's: the reply must still end, said, and logged
            logger.exception("could not save a reply")
            self._save_failed(outcome.text)
        return None

    def _finish(self, conversation, model, outcome, started):
        """The reply is saved: its slot back, the final message shown, its log line, and a title for a
        conversation that has none."""
        self._ended()  # its user may ask for another reply (once the page knows) while the title is made
        self.emit(events.FINAL)
        failure, status = outcome.failure, outcome.status
        self.log_reply(
            model=model,
            ttft_ms=round((outcome.first_piece_at - started) * 1000) if outcome.first_piece_at else None,
            pieces=outcome.pieces,
            duration_ms=round((time.monotonic() - started) * 1000),
            outcome=logs.outcome_of(failure) if failure else ("error" if status == ERROR else status),
            uid=self.conversations.uid,
            conversation=self.cid,
        )
        # A stopped first reply with some text is an exchange too: the conversation (or a fork) gets its own title.
        if wants_title(conversation) and (status == DONE or (status == STOPPED and outcome.text.strip())):
            title = make_title(self.llm, model, title_words(conversation, self.mid), outcome.text, self.settings)
            self.conversations.set_auto_title(self.cid, title)
            self.emit(events.TITLE)

    def _ended(self):
        """The reply is over: on_end(pieces) once (the user's reply slot back, the pieces charged)."""
        on_end, self.on_end, self.ended = self.on_end, None, True
        if on_end is not None:
            on_end(self.pieces)

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

    def __init__(self, live, settings, pace, log_reply=logs.log_reply):
        self.live, self.settings, self.pace, self._log_reply = live, settings, pace, log_reply
        self._threads = set()  # the running jobs' threads
        self._lock = threading.Lock()
        self._deadline = None

    def start(self, store, llm, uid, cid, mid, on_end=None, conversation=None):
        """Generate reply mid (already marked streaming in storage) in a job of its own; on_end(pieces) at its end.

        conversation, when given, is the conversation as just stored (it saves a read before the model starts).
        """
        job = Job(
            self.live,
            llm,
            Conversations(store, uid),
            cid,
            mid,
            settings=self.settings,
            pace=self.pace,
            past_deadline=self.past_deadline,
            log_reply=self._log_reply,
            conversation=conversation,
            on_end=on_end,
        )
        try:
            self.live.start(job.key)
        except LiveUnavailable as error:
            logger.error("live backend unavailable: %s", error)
            job.live_down = True
        thread = threading.Thread(target=self._run, args=(job,), name=f"reply-{mid}", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()
        return job

    def _run(self, job):
        try:
            job.run()
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def running(self):
        """How many jobs run in this process."""
        with self._lock:
            return len(self._threads)

    def stop(self, conversations, cid, mid):
        """Stop a reply wherever its job runs; a reply whose job died is stopped in storage."""
        # NotFound for a reply that is not this user's.
        conversation = conversations.stop_reply(cid, mid, self.pace.lease)
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
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return self.running()


def init_app(app):
    """Bind the reply jobs to the app (they use its live backend, generation settings and pace)."""
    app.extensions["replies"] = Replies(
        app.extensions["live"], Settings.from_config(app.config), Pace.from_config(app.config)
    )


def get_replies():
    """Return the current app's Replies."""
    from flask import current_app

    return current_app.extensions["replies"]
