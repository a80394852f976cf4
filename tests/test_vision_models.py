"""Which models are sent images: VISION_MODELS, and those the Hub's model info says see images (pipeline_tag
image-text-to-text), learned once per process in the background (never while a request waits).

The Hub is FakeHub (tests/support/fake_hub.py), over HTTP, reached through HF_ENDPOINT; the model that gets the
images is a FAKE OpenAI-compatible model server (tests/support/fake_model.py)."""

import base64
import io

import pytest

from chatbot.llm import ModelStatus
from support import HTMX, FakeModelServer, finish_reply, free_port, stored_conversations
from support.fake_hub import GOOD_TOKEN, FakeHub, flask_command, live
from support.files import photo_with_gps

TEXT_MODEL, SEEING_MODEL = "someone/text-model", "someone/vision-model"


def send_photo(client, model):
    """Post a message with a photo for model, as htmx does."""
    data = {"text": "What is this?", "model": model, "files": [(io.BytesIO(photo_with_gps((40, 20))), "p.jpg")]}
    return client.post("/new", data=data, content_type="multipart/form-data", headers=HTMX)


@pytest.fixture
def hub():
    mappings = {TEXT_MODEL: {"together": live("t")}, SEEING_MODEL: {"hyperbolic": live("v")}}
    tags = {TEXT_MODEL: "text-generation", SEEING_MODEL: "image-text-to-text"}
    with FakeHub(mappings, tags, hold=True) as server:
        yield server


def test_the_hubs_answer_adds_seeing_models_and_no_request_waits_for_it(make_app, hub):
    app = make_app(
        LLM_BACKEND="huggingface",
        HF_TOKEN=GOOD_TOKEN,
        HF_ENDPOINT=hub.url,
        CHATBOT_MODELS=[TEXT_MODEL, SEEING_MODEL],
        CHECK_MODELS=True,
    )
    backend, client = app.extensions["llm"], app.test_client()
    # The first request starts the check; the Hub holds its answer, and the send is answered meanwhile from
    # the configured VISION_MODELS (none of these two).
    response = send_photo(client, SEEING_MODEL)
    assert response.status_code == 400 and "cannot see images. No model here can" in response.text
    assert backend._check_thread.is_alive()

    hub.release.set()
    backend.wait_for_check(30)
    assert backend.seeing_models(app.config["VISION_MODELS"]) >= {SEEING_MODEL}
    assert TEXT_MODEL not in backend.seeing_models(app.config["VISION_MODELS"])
    response = send_photo(client, TEXT_MODEL)
    assert response.status_code == 400 and f"Pick one that can ({SEEING_MODEL})" in response.text
    assert (f"/api/models/{SEEING_MODEL}", ["inferenceProviderMapping", "pipeline_tag"]) in hub.requests


def test_an_unreachable_hub_leaves_the_configured_vision_models(make_app):
    app = make_app(
        LLM_BACKEND="huggingface",
        HF_TOKEN=GOOD_TOKEN,
        HF_ENDPOINT=f"http://127.0.0.1:{free_port()}",  # nothing listens: refused at once
        CHATBOT_MODELS=[TEXT_MODEL, SEEING_MODEL],
        VISION_MODELS=[TEXT_MODEL],
        CHECK_MODELS=True,
    )
    backend = app.extensions["llm"]
    app.test_client().get("/healthz")
    backend.wait_for_check(30)
    assert backend.seeing_models(app.config["VISION_MODELS"]) == {TEXT_MODEL}


def test_a_model_the_check_found_seeing_is_sent_the_image(make_app):
    with FakeModelServer(pieces=["Seen."], interval=0) as model:
        app = make_app(LLM_BACKEND="huggingface", HF_BASE_URL=model.url, HF_TOKEN="t", CHATBOT_MODELS=["fake-model"])
        assert "fake-model" not in app.config["VISION_MODELS"]
        app.extensions["llm"].apply_check([ModelStatus("fake-model", True, pipeline_tag="image-text-to-text")])
        client = app.test_client()
        response = send_photo(client, "fake-model")
        assert response.status_code == 200
        (document,) = stored_conversations(app)
        finish_reply(client, document["id"], document["messages"][1]["id"])
    (body,) = [body for body in model.bodies if body.get("max_tokens", 1024) > 30]
    _, image = body["messages"][-1]["content"]
    assert base64.b64decode(image["image_url"]["url"].split(",", 1)[1])[:2] == b"\xff\xd8"  # a JPEG


def test_models_check_prints_each_models_pipeline_tag_and_which_see_images(tmp_path):
    mappings = {TEXT_MODEL: {"together": live("t")}, SEEING_MODEL: {"hyperbolic": live("v")}, "a/b": {}}
    tags = {TEXT_MODEL: "text-generation", SEEING_MODEL: "image-text-to-text"}
    with FakeHub(mappings, tags) as hub:
        result = flask_command(
            ["models", "check"],
            tmp_path,
            HF_ENDPOINT=hub.url,
            HF_TOKEN=GOOD_TOKEN,
            LLM_BACKEND="huggingface",
            CHATBOT_MODELS=f"{TEXT_MODEL},{SEEING_MODEL},a/b",
            VISION_MODELS=f"{TEXT_MODEL},a/b",
        )
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: " ".join(line.split()[1:]) for line in result.stdout.splitlines()[1:4]}
    assert rows[TEXT_MODEL] == "ok via together; pipeline_tag text-generation"
    assert rows[SEEING_MODEL] == "ok via hyperbolic; pipeline_tag image-text-to-text"
    assert rows["a/b"] == "NOT SERVED no Inference Provider serves it"
    expected = (
        f"Sent images: {TEXT_MODEL} (VISION_MODELS; the Hub says text-generation), {SEEING_MODEL}, a/b (VISION_MODELS)."
    )
    assert expected in result.stdout
