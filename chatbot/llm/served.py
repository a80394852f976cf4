"""Which configured models are actually served, checked once after start-up.

Models come and go from Inference Providers; a model no provider serves
answers every reply with "unknown model". The Hub's model info with its
inference-provider mapping says who serves a model; with HF_BASE_URL, that
server's /v1/models lists what it serves. The backend keeps the answer
(chatbot/llm/base.py, `LLM.apply_check`).
"""

import httpx2
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from . import ModelStatus

# A chat model's provider mapping on the Hub: task "conversational" (or plain "text-generation"), status "live".
CHAT_TASKS = ("conversational", "text-generation")
CHECK_TIMEOUT = 10.0
# One request a model says both who serves it and what it does (image-text-to-text: it sees images).
EXPAND = ["inferenceProviderMapping", "pipeline_tag"]


def _status_code(error):
    return error.response.status_code if getattr(error, "response", None) is not None else None


def check_token(token, endpoint=None):
    """Why the Hub refuses token, or None when it accepts it."""
    if not token:
        return "HF_TOKEN is not set: create a token with 'Make calls to Inference Providers' and set HF_TOKEN"
    try:
        HfApi(endpoint=endpoint, token=token).whoami(token=token)
    except HfHubHTTPError as error:
        if _status_code(error) in (401, 403):
            return "the Hub rejected HF_TOKEN: set a valid token"
        return f"the Hub answered {_status_code(error)} to the token check"
    except (httpx2.HTTPError, OSError) as error:
        return f"the Hub cannot be reached ({type(error).__name__})"
    return None


def check_hub(model, token=None, provider=None, timeout=CHECK_TIMEOUT, endpoint=None):
    """The Hub's answer for one model: which live Inference Providers serve it for chat, and its pipeline_tag."""
    try:
        info = HfApi(endpoint=endpoint, token=token).model_info(model, expand=EXPAND, timeout=timeout)
    except RepositoryNotFoundError:
        return ModelStatus(model, False, detail="not on the Hub (a typo, or private to another account)")
    except HfHubHTTPError as error:
        if _status_code(error) in (401, 403):
            return ModelStatus(model, None, detail="the Hub rejected HF_TOKEN")
        return ModelStatus(model, None, detail=f"the Hub answered {_status_code(error)}")
    except (httpx2.HTTPError, OSError) as error:
        return ModelStatus(model, None, detail=f"the Hub cannot be reached ({type(error).__name__})")
    tag = info.pipeline_tag
    providers = [
        mapping.provider
        for mapping in info.inference_provider_mapping or []
        if mapping.status == "live" and mapping.task in CHAT_TASKS
    ]
    if provider and provider != "auto":
        if provider in providers:
            return ModelStatus(model, True, [provider], pipeline_tag=tag)
        others = f"; served by {', '.join(providers)}" if providers else ""
        return ModelStatus(model, False, providers, f"HF_PROVIDER={provider} does not serve it{others}", tag)
    if not providers:
        return ModelStatus(model, False, detail="no Inference Provider serves it", pipeline_tag=tag)
    return ModelStatus(model, True, providers, pipeline_tag=tag)


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
