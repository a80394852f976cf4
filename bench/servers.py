"""The servers the benchmarks share, each started on first use and stopped at the end of the run."""

import os
import tempfile
from contextlib import ExitStack
from functools import cached_property
from pathlib import Path

from chatbot.conversations import new_id
from support import CHROMIUM, CHROMIUM_ARGS, CREDENTIALS, FakeLLM, Gunicorn, S3Server, build_app

# A FAKE model for the apps whose figures leave the model out (growth, send, branches): its replies are done at
# once. It was the local model, "never called": but every send starts a reply, and the sends' replies kept
# llama.cpp busy on both cores through the benchmarks that came after (page views a second among them).
NO_MODEL = FakeLLM()


class Servers:
    """What benchmarks need, started lazily: moto's S3 server, Chromium."""

    def __init__(self):
        self._stack = ExitStack()

    @cached_property
    def s3(self):
        """moto's S3 server; boto3 in this process reaches it through AWS_ENDPOINT_URL."""
        os.environ.update(CREDENTIALS)
        server = S3Server().start()
        self._stack.callback(server.stop)
        os.environ["AWS_ENDPOINT_URL"] = server.url
        return server

    @cached_property
    def browser(self):
        """Debian's Chromium, headless, through Playwright."""
        from playwright.sync_api import sync_playwright

        playwright = self._stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self._stack.callback(browser.close)
        return browser

    def close(self):
        """Stop every server started, newest first."""
        self._stack.close()


def bench_app(**settings):
    """An app over a fresh folder store (or settings' STORAGE_URL) whose replies come from a fake at once."""
    # The benchmarks send far faster than a person: rate limits off (RATELIMIT_ENABLED, README "Security").
    if isinstance(settings.get("CHATBOT_MODELS"), str):  # written for gunicorn's environment: a list here
        settings["CHATBOT_MODELS"] = settings["CHATBOT_MODELS"].split(",")
    return build_app(Path(tempfile.mkdtemp()), NO_MODEL, **{"RATELIMIT_ENABLED": False, **settings})


def bench_gunicorn(**settings):
    """The app under gunicorn as the Procfile runs it, over a fresh folder store, with an access log off."""
    return Gunicorn(
        {
            "SECRET_KEY": "bench-" + new_id() + new_id(),  # production wants 32 characters or more
            "RATELIMIT_ENABLED": "false",  # the load test sends far faster than a person
            "STORAGE_URL": f"file://{tempfile.mkdtemp()}/data",
            "GUNICORN_CMD_ARGS": "--access-logfile=/dev/null",
            **settings,
        }
    )


def cpu_seconds(pid):
    """The CPU time a process has used (user and system), in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime, stime in clock ticks (USER_HZ = 100 on Linux)
