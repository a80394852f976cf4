"""The app as the tests build it, what its store holds, and a fake model for tests that are not about replies."""

import json
import threading
import time

from chatbot import create_app
from chatbot.config import TIMING_DEFAULTS
from chatbot.llm import LLM

# Settings that make the small model quick and repeatable in tests.
TEST_SETTINGS = {
    "TESTING": True,
    "LLM_BACKEND": "local",
    "TEMPERATURE": 0.0,
    "MAX_TOKENS": 48,
    "LLM_SEED": 0,
    "WTF_CSRF_ENABLED": False,
}
# The developer's environment must not leak into a test: conftest removes these before each one.
CLEARED_ENVIRONMENT = (
    "HF_TOKEN",
    "HF_KEY",
    "HF_BASE_URL",
    "HF_PROVIDER",
    "HF_ENDPOINT",
    "LLM_BACKEND",
    "STORAGE_URL",
    "CHATBOT_MODELS",
    "VISION_MODELS",
    "SYSTEM_PROMPT",
    "ALLOW_GUESTS",
    "MAX_MESSAGE_CHARS",
    "SECRET_KEY",
    "AWS_ENDPOINT_URL",
    "LOCAL_MODEL_PATH",
    "REDIS_URL",
    "GUNICORN_THREADS",
    *TIMING_DEFAULTS,
)


def build_app(data_dir, llm, **settings):
    """An app over a folder store in data_dir; with the local backend, llm is its model (shared, loaded once)."""
    app = create_app({**TEST_SETTINGS, "STORAGE_URL": f"file://{data_dir}/data", **settings})
    if app.config["LLM_BACKEND"] == "local":
        app.extensions["llm"] = llm
    return app


def stored_conversations(app):
    """Every conversation document in the app's store, as dicts."""
    store = app.extensions["store"]
    documents = []
    for key in store.keys("users/"):
        if "/conversations/" in key:
            documents.append(json.loads(store.read(key)[0]))
    return documents


def guest_uid(client):
    """The guest id in a test client's session (it has one after its first request)."""
    with client.session_transaction() as session:
        return session["guest_uid"]


def as_guest(client, uid):
    """Make a test client the guest uid (to read conversations seeded for uid)."""
    with client.session_transaction() as session:
        session["guest_uid"] = uid
    return client


# A reply with code and a table, for the browser tests of what surrounds a streaming reply (focus, layout).
SLOW_FRUIT_REPLY = (
    "Some code:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nA table:\n\n"
    "| fruit | colour |\n|---|---|\n| apple | red |\n| kiwi | green |\n\nThe end of the reply."
)
SLOW_FRUIT_TITLE = "Fruit and code"


class FakeLLM(LLM):
    """A FAKE model, for tests about what surrounds a reply (storage, rename, search, export), never about
    the reply itself: every reply is the same fixed pieces at once, every title the same fixed text."""

    def __init__(self, pieces=("Hello", " from", " a", " fake", " model."), title="A fixed fake title"):
        super().__init__(["SmolLM2-135M-Instruct"])
        self.pieces, self.title = list(pieces), title

    def stream(self, messages, model=None, **params):
        """Yield the fixed pieces."""
        yield from self.pieces

    def complete(self, messages, model=None, **params):
        """Return the fixed title (the app asks complete() only for titles)."""
        return self.title


class FakeSlowLLM(FakeLLM):
    """A FAKE model that writes slowly: its pieces one every `interval` seconds, for tests about what the page
    or the server does while a reply streams (the text itself is known, not generated)."""

    def __init__(self, pieces, interval=0.03, title="A slow fake title"):
        super().__init__(pieces, title)
        self.interval = interval

    def stream(self, messages, model=None, **params):
        """Yield the pieces, waiting `interval` seconds before each."""
        for piece in self.pieces:
            time.sleep(self.interval)
            yield piece


def in_pieces(text, size=4):
    """text cut into pieces of `size` characters, as a model streams it."""
    return [text[start : start + size] for start in range(0, len(text), size)]


class BlockingLLM(FakeLLM):
    """A FAKE model whose replies wait until the test sets `release` (30 s at most), counting in `started` the
    replies that began: for tests about replies running at once, not about their text."""

    def __init__(self):
        super().__init__()
        self.release, self.started = threading.Event(), 0

    def stream(self, messages, model=None, **params):
        """Wait for release, then yield the fixed pieces."""
        self.started += 1
        self.release.wait(30)
        yield from self.pieces


class SlowTitleLLM(FakeLLM):
    """A FAKE model whose replies come at once but whose title waits until the test sets `release` (30 s at
    most): for tests about what happens between a reply's end and its conversation's title."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    def complete(self, messages, model=None, **params):
        """Wait for release, then return the fixed title."""
        self.release.wait(30)
        return self.title
