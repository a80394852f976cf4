"""The LLM interface every backend (and every fake model of the tests) implements, with its defaults.

A backend sets `configured_models` and `models` (through `__init__`), and implements `stream()`; the rest
has a default here: `complete()` joins the stream, `problem()` and `check_token()` find nothing wrong,
and the start-up check keeps its answer on the backend, served models first (so `models[0]`, the
default, is served), unserved ones marked for the picker. A backend that can tell which of its models
are served implements `check_models()`.
"""

import logging
import threading

logger = logging.getLogger("chatbot.llm.served")  # the check's messages keep the logger operators know
# The Hub's pipeline_tag of a model that reads images with text (Qwen2.5-VL, Llama 3.2 Vision, Gemma 3).
IMAGE_TEXT_TO_TEXT = "image-text-to-text"


class LLM:
    """A language model backend: the models a user may pick, and replies streamed in pieces."""

    check_at_start = False  # init_app turns it on outside tests: the first request starts the check
    base_url = None  # an OpenAI-compatible server the operator configured (HF_BASE_URL), shown by the CLI
    _unavailable = frozenset()
    _seeing = frozenset()  # the models the check found to see images (the Hub's pipeline_tag)
    _check_thread = None
    _check_lock = threading.Lock()  # guards only the thread's start, once per process

    def __init__(self, models):
        self.configured_models = list(models)
        self.models = list(self.configured_models)  # served ones first once the start-up check has run

    def stream(self, messages, model=None, **params):
        """Yield the reply's text pieces; raise an LLMError when the model cannot answer."""
        raise NotImplementedError

    def complete(self, messages, model=None, **params):
        """Return the whole reply as one string."""
        return "".join(self.stream(messages, model, **params))

    def problem(self):
        """Why this backend cannot run, or None (checked without a request)."""
        return None

    def check_token(self):
        """Why the backend's credentials are refused, or None."""
        return None

    def check_models(self):
        """Return a ModelStatus for each configured model."""
        raise NotImplementedError

    def available_models(self):
        """The models a user may pick, the default first."""
        return [model for model in self.models if model not in self._unavailable]

    def unavailable_models(self):
        """The models the check found nothing serving (empty until it has run)."""
        return self._unavailable

    def seeing_models(self, configured=()):
        """The models sent images: those configured (VISION_MODELS) and those the check found to see images.

        Never waits: before the check has answered (or when it cannot tell) it is the configured ones."""
        return frozenset(configured) | self._seeing

    def apply_check(self, statuses):
        """Mark unserved models unavailable and put served ones first; change nothing when none is served.
        Models whose pipeline_tag is image-text-to-text are noted as seeing images."""
        self._seeing = frozenset(status.model for status in statuses if status.pipeline_tag == IMAGE_TEXT_TO_TEXT)
        if self._seeing:
            logger.info("models that see images (the Hub's pipeline_tag): %s", ", ".join(sorted(self._seeing)))
        served = [status.model for status in statuses if status.served]
        unserved = [status.model for status in statuses if status.served is False]
        for status in statuses:
            if not status.served:
                logger.warning("model %s: %s", status.model, status.detail or "not served")
        if not served:
            if unserved:
                logger.error(
                    "no configured model is served (CHATBOT_MODELS): replies will fail; run `flask models check`"
                )
            return
        unavailable = frozenset(unserved)
        # Replaced whole, never changed in place: readers in other threads need no lock.
        self.models = [model for model in self.configured_models if model not in unavailable] + [
            model for model in self.configured_models if model in unavailable
        ]
        self._unavailable = unavailable
        if unserved:
            logger.warning(
                "marked unavailable in the picker: %s; the default model is now %s", ", ".join(unserved), self.models[0]
            )
        else:
            logger.info("every configured model is served; the default model is %s", self.models[0])

    def start_model_check(self):
        """Run the check once, in a daemon thread, so neither start-up nor a page waits for it."""
        if self._check_thread is not None:
            return
        with self._check_lock:
            if self._check_thread is None:
                self._check_thread = threading.Thread(target=self._run_check, name="models-check", daemon=True)
                self._check_thread.start()

    def wait_for_check(self, timeout=None):
        """Block until the background check has finished (tests, the CLI)."""
        if self._check_thread is not None:
            self._check_thread.join(timeout)

    def _run_check(self):
        try:
            self.apply_check(self.check_models())
        except Exception:  # a bug here must not take a worker down: the picker keeps every model
            logger.exception("the models check failed")
