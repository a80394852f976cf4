"""The Hugging Face backend: huggingface_hub.InferenceClient, streamed chat completions.

With HF_BASE_URL the same client talks to any OpenAI-compatible server (TGI,
vLLM, llama.cpp, an Inference Endpoint); with HF_PROVIDER, to an Inference
Provider through Hugging Face's router.
"""

import copy

import httpx2
from huggingface_hub import InferenceClient, constants
from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError, TextGenerationError

from ..config import DEFAULT_HF_MODELS, GENERATION_DEFAULTS
from . import LLM, LLMError, RateLimited, Rejected, TimedOut, Unavailable
from .served import check_hub, check_server, check_token


def _retry_after(response):
    value = response.headers.get("retry-after", "")
    return int(value) if value.isdigit() else None


def translate(error):
    """Map an exception from huggingface_hub or httpx2 to one of the LLMError types."""
    if isinstance(error, InferenceTimeoutError | httpx2.TimeoutException):
        return TimedOut(str(error))
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code
        if status == 429:
            return RateLimited(str(error), retry_after=_retry_after(error.response))
        if status in (401, 403):
            return Rejected(
                str(error), "The model service rejected the access token. The operator must set a valid HF_TOKEN."
            )
        if status in (400, 404, 422):
            return Rejected(
                str(error),
                "The model service could not run this request (unknown model, or the conversation is too long).",
            )
        return Unavailable(str(error))
    if isinstance(error, TextGenerationError | ValueError):
        # An error event in the middle of a stream, or a stream cut mid-line (its JSON does not parse).
        return Unavailable(str(error), "The model stopped with an error before finishing.")
    if isinstance(error, httpx2.TransportError | OSError):  # refused, reset, or cut mid-stream
        return Unavailable(str(error), "The model server cannot be reached right now. Please retry shortly.")
    return LLMError(str(error))


# What a user paying with their own Hugging Face account can cause, and what they can do about it.
USER_ERRORS = {
    401: "Hugging Face no longer accepts your sign-in. Sign in with Hugging Face again, then retry.",
    402: "Your Hugging Face account has no Inference credits left. Add credits on huggingface.co, or choose "
    "an organisation to bill on your account page, then retry.",
    403: "Hugging Face refused: your sign-in does not allow inference, or your plan cannot use this model. "
    "Sign in with Hugging Face again and allow inference, or pick another model, then retry.",
}


def translate_for_user(error):
    """As translate(), but said to a user whose own Hugging Face account pays: what they can do."""
    if isinstance(error, HfHubHTTPError) and error.response.status_code in USER_ERRORS:
        return Rejected(str(error), USER_ERRORS[error.response.status_code])
    return translate(error)


class HuggingFaceLLM(LLM):
    """Chat completions from the Hugging Face Inference API or an OpenAI-compatible server."""

    def __init__(self, models=(), token=None, base_url=None, provider=None, timeout=60.0, endpoint=None):
        super().__init__(list(models) or DEFAULT_HF_MODELS)
        self.endpoint = endpoint  # the Hub the models check asks (HF_ENDPOINT); None: huggingface_hub's default
        self.token = token
        self.base_url = base_url
        self.provider = provider
        self.timeout = timeout
        self.bill_to = None
        self.user_pays = False

    def for_user(self, token, bill_to=None):
        """This backend paid for by a signed-in Hugging Face user: their token (to HF_BASE_URL's server
        when set), the organisation they bill if any, and errors that say what they can do."""
        paid = copy.copy(self)
        paid.token, paid.bill_to, paid.user_pays = token, bill_to, True
        return paid

    def problem(self):
        """Why this backend cannot run, or None (checked without a request)."""
        return None if (self.token or self.base_url) else "no HF_TOKEN (or HF_BASE_URL)"

    def check_token(self):
        """Why HF_TOKEN is refused, or None (a self-hosted server's answer is in check_models)."""
        return None if self.base_url else check_token(self.token, self.endpoint)

    def check_models(self):
        """A ModelStatus per configured model: HF_BASE_URL's /v1/models, or the Hub's provider mapping (and its
        pipeline_tag, which says whether it sees images)."""
        if self.base_url:
            return check_server(self.base_url, self.configured_models, self.token)
        return [check_hub(model, self.token, self.provider, endpoint=self.endpoint) for model in self.configured_models]

    def _client(self):
        # A client per call is cheap (the HTTP connection pool is huggingface_hub's
        # shared session); closing it is what closes an abandoned stream's
        # response, so the server stops generating.
        # The bill-to header set directly: InferenceClient(bill_to=) warns about any token not shaped "hf_".
        headers = {constants.HUGGINGFACE_HEADER_X_BILL_TO: self.bill_to} if self.bill_to else None
        if self.base_url:
            return InferenceClient(base_url=self.base_url, token=self.token, timeout=self.timeout, headers=headers)
        return InferenceClient(provider=self.provider, token=self.token, timeout=self.timeout, headers=headers)

    def stream(
        self,
        messages,
        model=None,
        temperature=GENERATION_DEFAULTS["TEMPERATURE"],
        top_p=GENERATION_DEFAULTS["TOP_P"],
        max_tokens=GENERATION_DEFAULTS["MAX_TOKENS"],
        seed=None,
    ):
        """Yield the reply's text pieces as the server streams them."""
        model = model or self.models[0]
        try:
            with self._client() as client:
                chunks = client.chat_completion(
                    messages,
                    model=model,
                    stream=True,
                    temperature=temperature,
                    top_p=top_p,
                    max_tokens=max_tokens,
                    seed=seed,
                )
                for chunk in chunks:
                    piece = chunk.choices[0].delta.content if chunk.choices else None
                    if piece:
                        yield piece
        except (HfHubHTTPError, TextGenerationError, httpx2.HTTPError, OSError, ValueError) as error:
            raise (translate_for_user if self.user_pays else translate)(error) from error
