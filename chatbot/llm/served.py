"""Which configured models are actually served, checked once after start-up.

Models come and go from Inference Providers; a model no provider serves
answers every reply with "unknown model". The Hub's model info with its
inference-provider mapping says who serves a model; with HF_BASE_URL, that
server's /v1/models lists what it serves. `Availability` keeps the answer on
the backend: served models first (so `models[0]`, the default, is served),
unserved ones marked for the picker.
"""

import logging
import threading

import httpx2
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from . import ModelStatus

logger = logging.getLogger(__name__)

# A chat model's provider mapping on the Hub: task "conversational" (or plain "text-generation"), status "live".
CHAT_TASKS = ("conversational", "text-generation")
CHECK_TIMEOUT = 10.0


def _status_code(error):
    return error.response.status_code if getattr(error, "response", None) is not None else None


def check_token(token):
    """Why the Hub refuses token, or None when it accepts it."""
    if not token:
        return "HF_TOKEN is not set: create a token with 'Make calls to Inference Providers' and set HF_TOKEN"
    try:
        HfApi(token=token).whoami(token=token)
    except HfHubHTTPError as error:
        if _status_code(error) in (401, 403):
            return "the Hub rejected HF_TOKEN: set a valid token"
        return f"the Hub answered {_status_code(error)} to the token check"
    except (httpx2.HTTPError, OSError) as error:
        return f"the Hub cannot be reached ({type(error).__name__})"
    return None


def check_hub(model, token=None, provider=None, timeout=CHECK_TIMEOUT):
    """The Hub's answer for one model: which live Inference Providers serve it for chat."""
    try:
        info = HfApi(token=token).model_info(model, expand=["inferenceProviderMapping"], timeout=timeout)
    except RepositoryNotFoundError:
        return ModelStatus(model, False, detail="not on the Hub (a typo, or private to another account)")
    except HfHubHTTPError as error:
        if _status_code(error) in (401, 403):
            return ModelStatus(model, None, detail="the Hub rejected HF_TOKEN")
        return ModelStatus(model, None, detail=f"the Hub answered {_status_code(error)}")
    except (httpx2.HTTPError, OSError) as error:
        return ModelStatus(model, None, detail=f"the Hub cannot be reached ({type(error).__name__})")
    providers = [
        mapping.provider
        for mapping in info.inference_provider_mapping or []
        if mapping.status == "live" and mapping.task in CHAT_TASKS
    ]
    if provider and provider != "auto":
        if provider in providers:
            return ModelStatus(model, True, [provider])
        others = f"; served by {', '.join(providers)}" if providers else ""
        return ModelStatus(model, False, providers, f"HF_PROVIDER={provider} does not serve it{others}")
    if not providers:
        return ModelStatus(model, False, detail="no Inference Provider serves it")
    return ModelStatus(model, True, providers)


def check_server(base_url, models, token=None, timeout=CHECK_TIMEOUT):
    """What an OpenAI-compatible server lists at /v1/models, for each of models."""
    url = base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx2.get(url, headers=headers, timeout=timeout)
        response.raise_for_status()
        listed = [entry["id"] for entry in response.json()["data"]]
    except httpx2.HTTPStatusError as error:
        detail = f"HF_BASE_URL's /models answered {error.response.status_code}"
        if error.response.status_code in (401, 403):
            detail += ": the server rejected HF_TOKEN"
        return [ModelStatus(model, None, detail=detail) for model in models]
    except (httpx2.HTTPError, OSError, ValueError, KeyError, TypeError) as error:
        detail = f"HF_BASE_URL cannot be reached or lists no models ({type(error).__name__})"
        return [ModelStatus(model, None, detail=detail) for model in models]
    return [
        ModelStatus(model, True, ["HF_BASE_URL"])
        if model in listed
        else ModelStatus(model, False, detail=f"not listed by HF_BASE_URL, which serves: {', '.join(listed)}")
        for model in models
    ]


class Availability:
    """The start-up check's result on a backend: `models` reordered, `unavailable_models()` for the picker.

    A subclass sets `configured_models` and `models`, and implements check_models().
    """

    check_at_start = False
    _unavailable = frozenset()
    _check_thread = None
    _check_lock = threading.Lock()  # guards only the thread's start, once per process

    def check_models(self):
        """Return a ModelStatus for each configured model."""
        raise NotImplementedError

    def available_models(self):
        """The models a user may pick, the default first."""
        return [model for model in self.models if model not in self._unavailable]

    def unavailable_models(self):
        """The models the check found nothing serving (empty until it has run)."""
        return self._unavailable

    def apply_check(self, statuses):
        """Mark unserved models unavailable and put served ones first; change nothing when none is served."""
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
