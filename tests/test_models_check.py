"""Which configured models are served: `flask models check` and the picker after the start-up check.

The Hub cannot be reached from here, so FakeHub stands in for it over HTTP (only the two Hub endpoints
the check calls), and huggingface_hub is pointed at it with HF_ENDPOINT. huggingface_hub reads
HF_ENDPOINT when it is imported, so the command runs in a subprocess with the variable set. HF_BASE_URL
is checked against llama.cpp's real server.
"""

import json
import os
import subprocess
import sys
import threading
import urllib.request

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from support import ROOT

GOOD_TOKEN = "hf_fake_good_token"
SECRET_KEY = "a-test-secret-key-that-is-long-enough-for-production"


class FakeHub:
    """A FAKE Hugging Face Hub: model info with its inference-provider mapping, and whoami, over HTTP."""

    def __init__(self, mappings):
        self.mappings = mappings  # model id -> {provider: {"status", "providerId", "task"}}
        self.requests = []
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def wsgi(self, environ, start_response):
        request = Request(environ)
        self.requests.append((request.path, request.args.getlist("expand")))
        if request.headers.get("Authorization") != f"Bearer {GOOD_TOKEN}":
            response = Response(
                json.dumps({"error": "Invalid credentials in Authorization header"}),
                401,
                content_type="application/json",
            )
        elif request.path == "/api/whoami-v2":
            response = Response(json.dumps({"type": "user", "name": "operator"}), content_type="application/json")
        elif request.path.startswith("/api/models/") and request.path[len("/api/models/") :] in self.mappings:
            model = request.path[len("/api/models/") :]
            body = {"_id": "0" * 24, "id": model, "inferenceProviderMapping": self.mappings[model]}
            response = Response(json.dumps(body), content_type="application/json")
        else:
            response = Response(
                json.dumps({"error": "Repository not found"}),
                404,
                content_type="application/json",
                headers={"X-Error-Code": "RepoNotFound"},
            )
        return response(environ, start_response)

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()  # shutdown() waits a poll
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def live(provider_id, task="conversational"):
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


@pytest.fixture
def hub():
    mappings = {
        "google/gemma-2-9b-it": {},  # no provider serves it any more
        "meta-llama/Llama-3.1-8B-Instruct": {
            "together": live("meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo"),
            "novita": live("meta-llama/llama-3.1-8b-instruct"),
            "nebius": {**live("x"), "status": "staging"},
        },
        "Qwen/Qwen2.5-7B-Instruct": {"together": live("Qwen/Qwen2.5-7B-Instruct-Turbo")},
    }
    with FakeHub(mappings) as server:
        yield server


def hub_environment(hub, **more):
    return {
        "HF_ENDPOINT": hub.url,
        "HF_TOKEN": GOOD_TOKEN,
        "LLM_BACKEND": "huggingface",
        "CHATBOT_MODELS": "google/gemma-2-9b-it,meta-llama/Llama-3.1-8B-Instruct,Qwen/Qwen2.5-7B-Instruct,"
        "nobody/no-such-model",
        **more,
    }


def test_models_check_lists_who_serves_each_model(hub, tmp_path):
    result = flask_command(["models", "check"], tmp_path, **hub_environment(hub))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Backend: huggingface"
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in lines[1:5]}
    assert rows["google/gemma-2-9b-it"] == ["NOT", "SERVED  no Inference Provider serves it"]
    assert rows["meta-llama/Llama-3.1-8B-Instruct"] == ["ok", "via together, novita"]  # staging is not served
    assert rows["Qwen/Qwen2.5-7B-Instruct"] == ["ok", "via together"]
    assert rows["nobody/no-such-model"][1].endswith("not on the Hub (a typo, or private to another account)")
    assert "The default model will be meta-llama/Llama-3.1-8B-Instruct (the first served)" in result.stdout
    assert ("/api/models/google/gemma-2-9b-it", ["inferenceProviderMapping"]) in hub.requests
    assert GOOD_TOKEN not in result.stdout + result.stderr


def test_a_pinned_provider_must_serve_the_model(hub, tmp_path):
    result = flask_command(["models", "check"], tmp_path, **hub_environment(hub, HF_PROVIDER="novita"))
    assert result.returncode == 0, result.stderr
    assert "Qwen/Qwen2.5-7B-Instruct" in result.stdout
    assert "HF_PROVIDER=novita does not serve it; served by together" in result.stdout


def test_strict_check_fails_on_a_bad_token_saying_what_to_fix(hub, tmp_path):
    result = flask_command(["models", "check", "--strict"], tmp_path, **hub_environment(hub, HF_TOKEN="hf_wrong"))
    assert result.returncode == 1
    assert "the Hub rejected HF_TOKEN: set a valid token" in result.stderr
    assert "hf_wrong" not in result.stdout + result.stderr


def test_strict_check_fails_when_no_model_is_served(hub, tmp_path):
    result = flask_command(
        ["models", "check", "--strict"], tmp_path, **hub_environment(hub, CHATBOT_MODELS="google/gemma-2-9b-it")
    )
    assert result.returncode == 1
    assert "no configured model is served: set CHATBOT_MODELS" in result.stderr


def test_release_check_fails_without_a_token(tmp_path, model_path):
    # No HF_TOKEN: replies would come from the local model, which a Heroku slug does not have.
    result = flask_command(["release-check"], tmp_path, LOCAL_MODEL_PATH=str(tmp_path / "missing.gguf"))
    assert result.returncode == 1
    assert "set HF_TOKEN to use Hugging Face" in result.stderr


def test_release_check_passes_with_a_served_model(hub, tmp_path):
    result = flask_command(["release-check"], tmp_path, **hub_environment(hub))
    assert result.returncode == 0, result.stderr
    assert "Release check passed." in result.stdout


@pytest.fixture(scope="module")
def served_id(llama_server):
    """The model id llama.cpp's server lists at /v1/models."""
    with urllib.request.urlopen(llama_server + "/v1/models", timeout=10) as response:
        return json.load(response)["data"][0]["id"]


@pytest.mark.model
def test_models_check_reads_the_base_urls_model_list(llama_server, served_id, tmp_path):
    result = flask_command(
        ["models", "check", "--strict"],
        tmp_path,
        HF_BASE_URL=llama_server + "/v1",
        LLM_BACKEND="huggingface",
        CHATBOT_MODELS=f"someone/not-here,{served_id}",
    )
    assert result.returncode == 0, result.stderr
    assert "Backend: huggingface via HF_BASE_URL" in result.stdout
    assert f"not listed by HF_BASE_URL, which serves: {served_id}" in result.stdout
    assert [line.split() for line in result.stdout.splitlines() if line.strip().startswith(served_id)] == [
        [served_id, "ok", "via", "HF_BASE_URL"]
    ]


@pytest.mark.model
def test_start_up_check_disables_unserved_models_in_the_picker(make_app, llama_server, served_id):
    app = make_app(
        LLM_BACKEND="huggingface",
        HF_BASE_URL=llama_server + "/v1",
        HF_TOKEN=None,
        CHATBOT_MODELS=["someone/not-here", served_id],
        CHECK_MODELS=True,
    )
    backend = app.extensions["llm"]
    assert backend.models[0] == "someone/not-here"  # until the check has run
    client = app.test_client()
    client.get("/healthz")  # the first request starts the check, in the background
    backend.wait_for_check(30)

    assert backend.models == [served_id, "someone/not-here"]
    assert backend.unavailable_models() == {"someone/not-here"}
    assert backend.available_models() == [served_id]
    page = client.get("/").get_data(as_text=True)
    assert "disabled>someone/not-here (unavailable)</option>" in page
    assert f"disabled>{served_id}" not in page


def test_no_check_runs_in_tests_unless_asked(make_app):
    app = make_app(LLM_BACKEND="huggingface", HF_BASE_URL="http://127.0.0.1:9/v1")
    app.test_client().get("/healthz")
    assert app.extensions["llm"]._check_thread is None
