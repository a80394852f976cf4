"""Which configured models are served: `flask models check` and the picker after the start-up check.

The Hub cannot be reached from here, so FakeHub (tests/support/fake_hub.py) stands in for it over HTTP
(only the two Hub endpoints the check calls), and huggingface_hub is pointed at it with HF_ENDPOINT.
huggingface_hub reads HF_ENDPOINT when it is imported, so the command runs in a subprocess with the variable
set (flask_command). HF_BASE_URL is checked against llama.cpp's real server.
"""

import json
import urllib.request

import pytest

from support.fake_hub import GOOD_TOKEN, FakeHub, flask_command, live

SECRET_KEY = "a-test-secret-key-that-is-long-enough-for-production"


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
    assert ("/api/models/google/gemma-2-9b-it", ["inferenceProviderMapping", "pipeline_tag"]) in hub.requests
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
