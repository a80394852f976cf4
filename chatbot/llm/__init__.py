"""Language models: one interface, two backends (Hugging Face, a local llama.cpp model).

A backend is an `LLM` (base.py, which holds the defaults): `models` (the names
a user may pick, the first is the default), `stream(messages, model, **params)`
yielding text pieces and `complete(messages, model, **params)` returning a
string. Failures are raised as the LLMError subclasses below, whose
`user_message` the chat shows.

Which models are actually served is checked once, in the background, after
start-up: `check_models()` returns a ModelStatus per model;
`start_model_check()` runs it in a daemon thread, after which `models` lists
the served ones first (so `models[0]`, the default, is served) and
`unavailable_models()` names those nothing serves, which the picker disables. The same answer says which
models see images (the Hub's pipeline_tag): `seeing_models(VISION_MODELS)` adds them to the configured ones.
"""

import logging
from dataclasses import dataclass, field

from flask import current_app

from .base import LLM

__all__ = ["LLM", "LLMError", "ModelStatus", "RateLimited", "Rejected", "TimedOut", "Unavailable"]

logger = logging.getLogger(__name__)


class LLMError(Exception):
    """The model could not answer; user_message says what the user can do."""

    user_message = "The model could not answer. Please try again."

    def __init__(self, detail="", user_message=None):
        super().__init__(detail or self.user_message)
        if user_message:
            self.user_message = user_message


class RateLimited(LLMError):
    """Too many requests; retry_after is in seconds when the server said."""

    def __init__(self, detail="", retry_after=None):
        self.retry_after = retry_after
        wait = f"in {retry_after} seconds" if retry_after else "in a minute"
        super().__init__(detail, f"The model is receiving too many requests. Please retry {wait}.")


class Unavailable(LLMError):
    """The model server is down, loading or unreachable."""

    user_message = "The model is unavailable right now (it may be loading). Please retry shortly."


class TimedOut(LLMError):
    """The model took too long to answer."""

    user_message = "The model took too long to answer. Please retry."


class Rejected(LLMError):
    """The request was refused: bad token, no access, or an invalid request."""

    user_message = "The model service refused the request. The operator should check the token and model name."


@dataclass
class ModelStatus:
    """Whether a configured model can be used: served True/False, or None when it could not be told."""

    model: str
    served: bool | None
    providers: list[str] = field(default_factory=list)
    detail: str = ""
    pipeline_tag: str | None = None  # the Hub's task of the model ("image-text-to-text" sees images); None: not told


def create_backend(config):
    """Return the backend the configuration selects."""
    if config["LLM_BACKEND"] == "huggingface":
        from .huggingface import HuggingFaceLLM

        return HuggingFaceLLM(
            models=config["CHATBOT_MODELS"],
            token=config["HF_TOKEN"],
            base_url=config["HF_BASE_URL"],
            provider=config["HF_PROVIDER"],
            timeout=config["HF_TIMEOUT"],
            endpoint=config.get("HF_ENDPOINT"),
        )
    from .local import LocalLLM

    return LocalLLM(model_path=config["LOCAL_MODEL_PATH"])


def init_app(app):
    """Bind the configured backend to the app; a local model loads on first use."""
    backend = create_backend(app.config)
    app.extensions["llm"] = backend
    # Checked in the background on first use (never at import, never in tests unless asked).
    check = app.config.get("CHECK_MODELS")
    backend.check_at_start = (not app.testing) if check is None else check
    app.before_request(_start_model_check)
    # A global, not a context variable: the composer is a macro, and imported macros see only globals.
    app.jinja_env.globals["unavailable_models"] = unavailable_models
    app.jinja_env.globals["seeing_models"] = seeing_models
    logger.info("LLM backend %s, models: %s", app.config["LLM_BACKEND"], ", ".join(backend.models))
    problem = backend.problem()
    if problem and app.config["LLM_BACKEND"] == "local":
        logger.warning(
            "the local model cannot run (%s): replies will fail until HF_TOKEN is set "
            "or `make install` adds the local model",
            problem,
        )


def _start_model_check():
    # The first request of a process starts the check (in a thread): a process that serves, checks.
    backend = get_llm()
    if backend.check_at_start:
        backend.start_model_check()


def unavailable_models():
    """The models the picker disables (none until the background check has found some)."""
    return get_llm().unavailable_models()


def seeing_models():
    """The models sent images (VISION_MODELS, and those the check found to see): the picker marks them."""
    return get_llm().seeing_models(current_app.config["VISION_MODELS"])


def get_llm():
    """Return the current app's LLM backend."""
    return current_app.extensions["llm"]
