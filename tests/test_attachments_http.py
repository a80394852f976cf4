"""Attachments through the app: a no-JS multipart send, the file route's headers and owner-only access,
what the (FAKE, OpenAI-compatible) model server receives, S3 deletion and the export zip."""

import base64
import io
import json
import re
import zipfile

import pytest
from PIL import Image

from support import HTMX, FakeModelServer, finish_reply, new_bucket, stored_conversations
from support.files import GPS_IFD, pdf, photo_with_gps


def send(client, text, files, path="/new", headers=None, model=None):
    """Post the composer as a browser without JavaScript does: multipart, with files."""
    data = {"text": text, "files": [(io.BytesIO(body), name) for name, body in files]}
    if model:
        data["model"] = model
    return client.post(path, data=data, content_type="multipart/form-data", headers=headers or {})


def user_message(app):
    (conversation,) = stored_conversations(app)
    return conversation, conversation["messages"][0]


def test_without_javascript_a_message_is_sent_with_an_image_and_a_text_file(make_app):
    app = make_app(VISION_MODELS=["SmolLM2-135M-Instruct"])
    client = app.test_client()
    response = send(client, "What is this?", [("photo.jpg", photo_with_gps()), ("notes.md", b"# Notes\n")])
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).text
    conversation, message = user_message(app)
    kinds = [(file["name"], file["kind"], file["type"]) for file in message["attachments"]]
    assert kinds == [("photo.jpg", "image", "image/jpeg"), ("notes.md", "text", "text/plain")]
    image_id, text_id = (file["id"] for file in message["attachments"])
    assert f'<img src="/files/{image_id}"' in page and f'href="/files/{text_id}" download="notes.md"' in page
    assert conversation["messages"][1]["status"] == "done"


def test_a_file_is_served_to_its_owner_with_safe_headers_and_to_nobody_else(make_app):
    app = make_app()
    client = app.test_client()
    send(client, "Look", [("page.html", b"<script>alert(1)</script>")])
    _, message = user_message(app)
    url = f"/files/{message['attachments'][0]['id']}"
    response = client.get(url)
    assert response.status_code == 200 and response.data == b"<script>alert(1)</script>"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="page.html.txt"')
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert response.headers["Cache-Control"].startswith("private")
    assert app.test_client().get(url).status_code == 404  # another guest


def test_refusals_keep_the_typed_text_in_the_composer(make_app):
    app = make_app()
    client = app.test_client()
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    response = send(client, "Keep this text", [("cat.png", svg)])
    assert response.status_code == 400
    assert "named like an image" in response.text and "Keep this text</textarea>" in response.text
    response = send(client, "Keep me too", [("photo.jpg", photo_with_gps())], headers=HTMX)
    assert response.status_code == 400 and "cannot see images" in response.text
    assert response.headers["HX-Retarget"] == "#composer-error"
    response = send(client, "Pages", [("long.pdf", pdf(51))])
    assert response.status_code == 413 and "51 pages" in response.text and "Pages</textarea>" in response.text
    assert stored_conversations(app) == [] and not list(app.extensions["store"].keys("users/"))


def test_the_model_receives_the_reencoded_image_and_the_files_text(make_app):
    with FakeModelServer(pieces=["Seen."], interval=0) as server:
        app = make_app(
            LLM_BACKEND="huggingface",
            HF_BASE_URL=server.url,
            HF_TOKEN="hf_test",
            CHATBOT_MODELS=["fake-model"],
            VISION_MODELS=["fake-model"],
        )
        client = app.test_client()
        files = [("photo.jpg", photo_with_gps()), ("report.pdf", pdf(1)), ("data.csv", b"city,n\nParis,3\n")]
        response = send(client, "Describe", files, headers=HTMX, model="fake-model")
        assert response.status_code == 200
        cid = response.headers["HX-Push-Url"].rsplit("/", 1)[1]
        _, message = user_message(app)
        finish_reply(client, cid, stored_conversations(app)[0]["messages"][1]["id"])
    (body,) = [body for body in server.bodies if body.get("max_tokens", 1024) > 30]
    (turn,) = [turn for turn in body["messages"] if turn["role"] == "user"]
    text_part, image_part = turn["content"]
    assert "File report.pdf:" in text_part["text"] and "Quarterly revenue grew" in text_part["text"]
    assert "File data.csv:" in text_part["text"] and "Paris,3" in text_part["text"]
    assert text_part["text"].endswith("Describe")
    url = image_part["image_url"]["url"]
    assert image_part["type"] == "image_url" and url.startswith("data:image/jpeg;base64,")
    sent = base64.b64decode(url.split(",", 1)[1])
    stored = app.extensions["store"].read(f"users/{stored_uid(app)}/files/{message['attachments'][0]['id']}")[0]
    assert sent == stored
    image = Image.open(io.BytesIO(sent))
    assert image.size == (1568, 784) and not image.getexif().get_ifd(GPS_IFD) and b"FakeCam" not in sent


def stored_uid(app):
    (key,) = [key for key in app.extensions["store"].keys("users/") if "/conversations/" in key]
    return key.split("/")[1]


@pytest.fixture
def s3_app(make_app, s3_server, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    bucket = new_bucket(s3_server)
    app = make_app(STORAGE_URL=f"s3://{bucket}/chatbot", VISION_MODELS=["SmolLM2-135M-Instruct"])
    app.bucket = bucket
    return app


def bucket_keys(s3_server, bucket):
    listed = s3_server.client().list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listed.get("Contents", [])]


def test_on_s3_the_export_holds_the_files_and_a_deleted_conversation_takes_them(s3_app, s3_server):
    client = s3_app.test_client()
    response = send(client, "Two files", [("a.txt", b"alpha"), ("b.png", photo_with_gps((40, 20), "PNG"))])
    assert response.status_code == 303
    conversation, message = user_message(s3_app)
    ids = [file["id"] for file in message["attachments"]]
    assert all(any(key.endswith(f"/files/{fid}") for key in bucket_keys(s3_server, s3_app.bucket)) for fid in ids)

    archive = zipfile.ZipFile(io.BytesIO(client.get("/account/export.zip").data))
    assert archive.read(f"files/{ids[0]}/a.txt") == b"alpha"
    assert Image.open(io.BytesIO(archive.read(f"files/{ids[1]}/b.png"))).size == (40, 20)
    exported = json.loads(archive.read(f"conversations/{conversation['id']}.json"))
    assert [file["id"] for file in exported["messages"][0]["attachments"]] == ids

    assert client.post(f"/sidebar/{conversation['id']}/delete").status_code == 303
    assert not [key for key in bucket_keys(s3_server, s3_app.bucket) if "/files/" in key]
    assert client.get(f"/files/{ids[0]}").status_code == 404


def test_delete_all_my_conversations_deletes_the_files(make_app):
    app = make_app()
    client = app.test_client()
    send(client, "One", [("a.txt", b"alpha")])
    assert client.post("/account/delete-conversations").status_code in (302, 303)
    assert not [key for key in app.extensions["store"].keys("users/") if "/files/" in key]


def test_names_and_text_outside_the_bmp_survive_every_step_into_html_and_headers(make_app):
    """A file name and its text with emoji and 𝔘 (characters outside the BMP): stored, shown in the page,
    served with a Content-Disposition a browser can read, and given to the model as they were."""
    from urllib.parse import quote

    model = FakeModelServer(pieces=["ok"], interval=0)
    with model:
        app = make_app(LLM_BACKEND="huggingface", HF_BASE_URL=model.url, HF_TOKEN="t", CHATBOT_MODELS=["fake-model"])
        client = app.test_client()
        name, text = "𝔘nicode 😀 notes.txt", "Résumé 😀 of 𝔘 and 中文\n"
        response = send(client, "Read 😀 this", [(name, text.encode())])
        assert response.status_code == 303
        page = client.get(response.headers["Location"]).text
        _, message = user_message(app)
        assert message["attachments"][0]["name"] == name and message["content"] == "Read 😀 this"
        assert f'download="{name}"' in page and "Read 😀 this" in page
        served = client.get(f"/files/{message['attachments'][0]['id']}")
        assert served.data.decode() == text
        assert f"filename*=UTF-8''{quote(name, safe='')}" in served.headers["Content-Disposition"]
        prompt = json.dumps(model.bodies[0], ensure_ascii=False)
        assert name in prompt and "Résumé 😀 of 𝔘 and 中文" in prompt


def test_a_body_over_max_content_length_says_what_a_message_may_carry(make_app):
    """MAX_CONTENT_LENGTH is the message cap plus 1 MB; over it the body is refused unread: in the composer for
    htmx (the form, its text and files, stays on the page), as a page without JavaScript (Back keeps the text)."""
    assert make_app().config["MAX_CONTENT_LENGTH"] == 21 * 1024 * 1024
    app = make_app(ATTACHMENT_MESSAGE_BYTES=100_000, ATTACHMENT_FILE_BYTES=100_000)
    assert app.config["MAX_CONTENT_LENGTH"] == 100_000 + 1024 * 1024
    client = app.test_client()
    caps = "a message may carry 4 files, 98 KB in all and 98 KB each."
    big = [("big.txt", b"a" * (1200 * 1024))]
    response = send(client, "Lost?", big, headers=HTMX)
    assert response.status_code == 413 and response.headers["HX-Retarget"] == "#composer-error"
    assert f"That was too much to send at once: {caps}" in response.text and "<html" not in response.text
    response = send(client, "Lost?", big)
    assert response.status_code == 413 and "<title>413" in response.text
    assert caps in response.text and "Go back (your message is still there as you typed it)" in response.text
    assert stored_conversations(app) == []


def test_the_picker_marks_the_models_that_see_images_for_the_composer(make_app):
    """data-vision on the picker's options: VISION_MODELS, and a model the models check found seeing (app.js says
    before sending that the selected model cannot see an attached image)."""
    from chatbot.llm import ModelStatus

    app = make_app(
        LLM_BACKEND="huggingface",
        HF_BASE_URL="http://127.0.0.1:9/v1",
        HF_TOKEN="t",
        CHATBOT_MODELS=["configured", "found", "text-only"],
        VISION_MODELS=["configured"],
    )
    app.extensions["llm"].apply_check([ModelStatus("found", True, pipeline_tag="image-text-to-text")])
    page = app.test_client().get("/new").text
    options = re.findall(r'<option value="([^"]+)"([^>]*)>', page)
    assert [name for name, attributes in options if "data-vision" in attributes] == ["configured", "found"]
    assert 'data-file-bytes="10485760" data-message-bytes="20971520"' in page and 'data-message-files="4"' in page
