"""The order of a send's checks, and what a reply sends the (FAKE, OpenAI-compatible) model of a conversation's
files: everything cheap before any file is decoded; the text of a message and its files within CONTEXT_CHARS;
only the newest images with a reply, and images weighing in the history's trimming.

A damaged image (its header whole, its pixels cut off) shows which came first: it is refused as damaged only
once it is decoded, so any other refusal of the same send proves it was never decoded."""

import io

import pytest

from support import HTMX, BlockingLLM, FakeModelServer, finish_reply, stored_conversations
from support.files import photo_with_gps, png


def damaged_photo():
    """A JPEG whose header reads (format, size), and whose pixels are cut off."""
    photo = photo_with_gps((800, 400))
    return photo[: len(photo) - 200]


def send(client, files, text="Look at this", path="/new", model=None):
    """Post the composer with files, as htmx does (multipart)."""
    data = {"text": text, "files": [(io.BytesIO(body), name) for name, body in files]}
    if model:
        data["model"] = model
    return client.post(path, data=data, content_type="multipart/form-data", headers=HTMX)


def test_a_damaged_image_is_decoded_only_once_the_send_may_go_on(make_app):
    app = make_app(VISION_MODELS=["SmolLM2-135M-Instruct"])
    response = send(app.test_client(), [("cut.jpg", damaged_photo())])
    assert response.status_code == 400 and "damaged" in response.text
    assert stored_conversations(app) == []


def test_an_image_for_a_model_that_cannot_see_is_refused_before_it_is_decoded(make_app):
    app = make_app()  # the fake model sees no images
    response = send(app.test_client(), [("cut.jpg", damaged_photo())], text="Keep this text")
    assert response.status_code == 400 and "cannot see images" in response.text
    assert response.headers["HX-Retarget"] == "#composer-error"


def test_files_over_the_upload_allowance_are_refused_before_they_are_decoded(make_app):
    app = make_app(VISION_MODELS=["SmolLM2-135M-Instruct"], DAILY_UPLOAD_BYTES=1000)
    response = send(app.test_client(), [("cut.jpg", damaged_photo())])
    assert response.status_code == 429 and "allowance of uploads" in response.text


def test_the_allowance_is_charged_the_bytes_received_not_the_smaller_bytes_stored(make_app):
    photo = photo_with_gps()  # re-encoded smaller: 1568 px wide, no EXIF
    app = make_app(VISION_MODELS=["SmolLM2-135M-Instruct"], DAILY_UPLOAD_BYTES=len(photo) - 1)
    assert send(app.test_client(), [("photo.jpg", photo)]).status_code == 429


def test_files_of_a_send_over_the_replies_at_once_are_not_decoded(make_app):
    app = make_app(VISION_MODELS=["SmolLM2-135M-Instruct"], MAX_REPLIES_AT_ONCE=1)
    app.extensions["llm"] = model = BlockingLLM()
    client = app.test_client()
    try:
        assert send(client, [("a.md", b"notes")]).status_code == 200  # its reply holds the one slot
        assert send(client, [("cut.jpg", damaged_photo())]).status_code == 429
    finally:
        model.release.set()


def test_the_text_of_a_message_and_its_files_together_must_fit_context_chars(make_app):
    """The tester's send: 4 files of 11,999 characters and a message of 7,999, 4.7 times CONTEXT_CHARS."""
    app = make_app()
    files = [(f"f{k}.txt", ("word " * 2399 + "abcd").encode()) for k in range(4)]
    response = send(app.test_client(), files, text="q" * 7999)
    assert response.status_code == 413 and "come to 56," in response.text and "12,000 at most" in response.text
    assert response.headers["HX-Retarget"] == "#composer-error" and stored_conversations(app) == []


@pytest.fixture
def vision_server(make_app):
    """An app whose one model (FAKE, on a fake OpenAI-compatible server that records requests) sees images."""
    with FakeModelServer(pieces=["Seen."], interval=0) as server:

        def make(**settings):
            app = make_app(
                LLM_BACKEND="huggingface",
                HF_BASE_URL=server.url,
                HF_TOKEN="hf_test",
                CHATBOT_MODELS=["fake-model"],
                VISION_MODELS=["fake-model"],
                **settings,
            )
            return app, server

        yield make


def converse(app, turns):
    """Send each (text, files) as a message of one conversation, reading each reply to its end."""
    client, cid = app.test_client(), None
    for text, files in turns:
        response = send(client, files, text, f"/c/{cid}/messages" if cid else "/new", model="fake-model")
        assert response.status_code == 200, response.text
        cid = cid or response.headers["HX-Push-Url"].rsplit("/", 1)[1]
        (conversation,) = stored_conversations(app)
        finish_reply(client, cid, conversation["messages"][-1]["id"])


def last_reply_request(server):
    """The messages of the last chat request the fake model server got (a title's is short)."""
    return [body for body in server.bodies if body.get("max_tokens", 1024) > 30][-1]["messages"]


def image_parts(messages):
    return [part for m in messages if isinstance(m["content"], list) for part in m["content"][1:]]


def test_a_reply_sends_the_newest_images_only_and_a_note_for_the_older(vision_server):
    app, server = vision_server(CONTEXT_CHARS=50_000)
    turns = [(f"turn {n}", [(f"t{n}-{k}.png", png((40 + n, 30 + k))) for k in range(2)]) for n in range(3)]
    converse(app, turns)
    messages = last_reply_request(server)
    assert len(image_parts(messages)) == 4  # 6 sent before: every image of the conversation with every reply
    first = next(m for m in messages if m["role"] == "user")
    assert first["content"].startswith("[t0-0.png: an image sent earlier, no longer shown]")


def test_images_count_in_the_historys_trimming(vision_server):
    """An image counted nothing, so a turn of images was never dropped however long the conversation."""
    app, server = vision_server(CONTEXT_CHARS=3000)  # two images weigh 4,000
    converse(app, [("Two images", [("a.png", png()), ("b.png", png((20, 10)))]), ("And now?", [])])
    messages = last_reply_request(server)
    assert image_parts(messages) == [] and "Two images" not in str(messages)
    assert messages[-1]["content"] == "And now?"
