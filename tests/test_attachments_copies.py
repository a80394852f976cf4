"""Files where messages are copied or sent again: a fork keeps copies of its own, and Regenerate and Edit send
the model the files of the turns they send (a FAKE, OpenAI-compatible model server records what it gets)."""

import io
from pathlib import Path

import pytest

from support import HTMX, FakeModelServer, finish_reply, stored_conversations
from support.files import photo_with_gps


def send(client, path="/new", text="Describe these", files=None):
    """Post the composer with files, as htmx does (multipart)."""
    files = files or [("photo.jpg", photo_with_gps((80, 40))), ("notes.md", b"# Notes\nremember the milk\n")]
    data = {"text": text, "files": [(io.BytesIO(body), name) for name, body in files]}
    return client.post(path, data=data, content_type="multipart/form-data", headers=HTMX)


def conversation(app, cid):
    """The stored document of conversation cid."""
    return next(document for document in stored_conversations(app) if document["id"] == cid)


def files_on_disk(app):
    """The ids of the files (their bytes) under users/*/files/ in the folder store."""
    root = Path(app.extensions["store"].root)
    return sorted(path.name for path in root.glob("users/*/files/*") if path.suffix != ".json")


def finish_last_reply(app, client, cid):
    """Wait for the conversation's current reply to end."""
    finish_reply(client, cid, conversation(app, cid)["current"])


def first_exchange(app, client):
    """A first message with a photo and a text file, its reply finished; return the conversation's id."""
    response = send(client)
    assert response.status_code == 200
    cid = response.headers["HX-Push-Url"].rsplit("/", 1)[1]
    finish_last_reply(app, client, cid)
    return cid


def test_a_fork_keeps_copies_of_the_files_and_outlives_the_original(make_app):
    app = make_app(VISION_MODELS=["SmolLM2-135M-Instruct"])
    client = app.test_client()
    cid = first_exchange(app, client)
    original = conversation(app, cid)["messages"][0]["attachments"]
    reply = conversation(app, cid)["messages"][1]["id"]

    response = client.post(f"/c/{cid}/messages/{reply}/fork")
    assert response.status_code == 303
    fork = response.headers["Location"].rsplit("/", 1)[1]
    copies = conversation(app, fork)["messages"][0]["attachments"]
    assert [(file["name"], file["kind"]) for file in copies] == [(file["name"], file["kind"]) for file in original]
    assert {file["id"] for file in copies}.isdisjoint(file["id"] for file in original)

    assert client.post(f"/sidebar/{cid}/delete").status_code == 303
    assert files_on_disk(app) == sorted(file["id"] for file in copies)
    page = client.get(f"/c/{fork}").text
    assert f'<img src="/files/{copies[0]["id"]}"' in page
    assert client.get(f"/files/{copies[1]['id']}").data == b"# Notes\nremember the milk\n"
    assert client.get(f"/files/{original[1]['id']}").status_code == 404


@pytest.fixture
def model():
    with FakeModelServer(pieces=["Seen."], interval=0) as server:
        yield server


def test_regenerate_and_edit_send_the_files_of_the_turns_again(make_app, model):
    app = make_app(
        LLM_BACKEND="huggingface",
        HF_BASE_URL=model.url,
        HF_TOKEN="hf_test",
        CHATBOT_MODELS=["fake-model"],
        VISION_MODELS=["fake-model"],
    )
    client = app.test_client()
    cid = first_exchange(app, client)
    first_user, reply = (message["id"] for message in conversation(app, cid)["messages"][:2])
    assert client.post(f"/c/{cid}/messages/{reply}/regenerate", headers=HTMX).status_code == 200
    finish_last_reply(app, client, cid)
    response = client.post(f"/c/{cid}/messages/{first_user}/edit", data={"text": "Say more"}, headers=HTMX)
    assert response.status_code == 200
    finish_last_reply(app, client, cid)
    assert send(client, f"/c/{cid}/messages", "And now?", [("more.txt", b"second file")]).status_code == 200
    finish_last_reply(app, client, cid)

    replies = [body for body in model.bodies if body.get("max_tokens", 1024) > 30]
    assert len(replies) == 4  # the first reply, regenerated, edited, and a follow-up
    for body in replies:
        first = next(turn for turn in body["messages"] if turn["role"] == "user")
        text, image = first["content"]
        assert "File notes.md:" in text["text"] and "remember the milk" in text["text"]
        assert image["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert replies[2]["messages"][-1]["content"][0]["text"].endswith("Say more")
    last = replies[3]["messages"][-1]
    assert "second file" in last["content"] and last["content"].endswith("And now?")
