"""A FAKE Hugging Face Hub over HTTP: the two endpoints the models check calls (model info, whoami).

huggingface_hub is pointed at it with HF_ENDPOINT (the app's setting, or the environment of a `flask` command
run in a subprocess: huggingface_hub reads the variable when it is imported).
"""

import json
import os
import subprocess
import sys
import threading

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from .servers import ROOT

GOOD_TOKEN = "hf_fake_good_token"
SECRET_KEY = "a-test-secret-key-that-is-long-enough-for-production"


class FakeHub:
    """A FAKE Hub: each model's info with its inference-provider mapping and pipeline_tag, and whoami.

    mappings: model id -> {provider: {"status", "providerId", "task"}}; tags: model id -> pipeline_tag.
    Its model info waits until `release` is set (set from the start unless hold=True), so a test can see
    what the app does while the Hub has not answered yet.
    """

    def __init__(self, mappings, tags=None, hold=False):
        self.mappings, self.tags = mappings, tags or {}
        self.requests = []
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def wsgi(self, environ, start_response):
        """Answer one request as the Hub's API does."""
        request = Request(environ)
        self.requests.append((request.path, request.args.getlist("expand")))
        model = request.path[len("/api/models/") :] if request.path.startswith("/api/models/") else None
        if model is not None:
            self.release.wait(30)
        if request.headers.get("Authorization") != f"Bearer {GOOD_TOKEN}":
            body, status = {"error": "Invalid credentials in Authorization header"}, 401
        elif request.path == "/api/whoami-v2":
            body, status = {"type": "user", "name": "operator"}, 200
        elif model in self.mappings:
            body, status = {"_id": "0" * 24, "id": model, "inferenceProviderMapping": self.mappings[model]}, 200
            if model in self.tags:
                body["pipeline_tag"] = self.tags[model]
        else:
            body, status = {"error": "Repository not found"}, 404
        headers = {"X-Error-Code": "RepoNotFound"} if status == 404 else {}
        response = Response(json.dumps(body), status, content_type="application/json", headers=headers)
        return response(environ, start_response)

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()  # shutdown() waits a poll
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def live(provider_id, task="conversational"):
    """A provider's live mapping of a model, as the Hub lists it."""
    return {"status": "live", "providerId": provider_id, "task": task}


def flask_command(args, tmp_path, **environment):
    """Run `flask --app wsgi ARGS` in a fresh interpreter with environment (and nothing of the developer's)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "AWS_", "CHATBOT_"))}
    env.update(
        {
            "SECRET_KEY": SECRET_KEY,
            "STORAGE_URL": f"file://{tmp_path}/data",
            "HF_HOME": str(tmp_path / "hf"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            **environment,
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
