"""A production rehearsal: the Procfile's lines exactly as written, under production settings.

No debug, a real SECRET_KEY, conversations on S3 (moto's server, behind a proxy that can cut it), replies
from the Hugging Face backend on llama.cpp's server, live replies through the real Redis of the tests.
The release line runs first, as Heroku's release phase does, then the web line serves.
"""

import json
import re
import secrets
import subprocess
import urllib.request

import httpx2
import pytest

from support import BIN, ROOT, FaultProxy, Gunicorn, new_bucket

pytestmark = [pytest.mark.gunicorn, pytest.mark.s3, pytest.mark.model, pytest.mark.redis]


def procfile():
    """The Procfile's process types and their command lines."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


class ProcfileWeb(Gunicorn):
    """The Procfile's web line, run by a shell as Heroku runs it."""

    def command(self):
        return ["/bin/sh", "-c", procfile()["web"]]

    def environment(self):
        environment = super().environment()
        return {**environment, "PATH": f"{BIN}:{environment.get('PATH', '')}"}


@pytest.fixture
def production(s3_server, llama_server, redis_server, monkeypatch):
    """Production settings: the environment Heroku would give the release and web processes."""
    proxy = FaultProxy(s3_server.port).start()
    with urllib.request.urlopen(llama_server + "/v1/models", timeout=10) as response:
        served_model = json.load(response)["data"][0]["id"]
    settings = {
        "SECRET_KEY": secrets.token_hex(32),
        "STORAGE_URL": f"s3://{new_bucket(s3_server)}/chatbot",
        "AWS_ENDPOINT_URL": proxy.url,
        "LLM_BACKEND": "huggingface",
        "HF_BASE_URL": llama_server + "/v1",
        "CHATBOT_MODELS": served_model,
        "REDIS_URL": redis_server.url,
        "WEB_CONCURRENCY": "2",
        "MAX_TOKENS": "16",
    }
    for name in ("FLASK_DEBUG", "LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    return settings, proxy


def test_release_then_web_as_the_procfile_says(production, tmp_path):
    settings, proxy = production
    web = ProcfileWeb(settings, ready_path="/healthz")
    release = subprocess.run(
        ["/bin/sh", "-c", procfile()["release"]],
        cwd=ROOT,
        env=web.environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert release.returncode == 0, release.stdout + release.stderr
    assert "Release check passed." in release.stdout

    with web:
        with httpx2.Client(base_url=web.url, timeout=60) as browser:
            # A chat without JavaScript: the form posts, the server answers after the whole reply.
            home = browser.get("/")
            token = re.search(r'name="csrf_token" value="([^"]+)"', home.text).group(1)
            sent = browser.post("/new", data={"text": "Say hello.", "csrf_token": token})
            assert sent.status_code in (302, 303), sent.text
            page = browser.get(sent.headers["Location"])
            assert page.status_code == 200 and "Say hello." in page.text
            assert 'data-status="done"' in page.text

            assert browser.get("/readyz").status_code == 200
            proxy.cut()
            down = browser.get("/readyz")
            assert down.status_code == 503 and down.json()["checks"]["storage"]["ok"] is False
            proxy.restore()
            assert browser.get("/readyz").status_code == 200

    output = web.output()
    lines = [line for line in output.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON, gunicorn's own too
    requests = [record for record in records if record.get("event") == "request"]
    assert {(record["method"], record["route"]) for record in requests} >= {
        ("GET", "/"),
        ("POST", "/new"),
        ("GET", "/c/<cid>"),
        ("GET", "/readyz"),
    }
    assert [record["status"] for record in requests if record["route"] == "/readyz"][-3:] == [200, 503, 200]
    # One line for the reply (the job's own line; a plain "reply ..." message until it calls logs.log_reply).
    assert any(record.get("event") == "reply" or record["message"].startswith("reply ") for record in records)
    assert "Say hello." not in output
    assert settings["SECRET_KEY"] not in output
