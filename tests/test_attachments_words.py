"""What the file pipeline says and takes: an SVG named .svg is text (only one named like a raster image is
refused), sizes said with enough precision that a file just over a cap does not read as the cap, "1 byte",
and the vision hint suggests only models that can be picked."""

import io

import pytest

from chatbot.attachments import TEXT, Caps, Refused, prepare, receive
from chatbot.attachments.base import MB, megabytes
from chatbot.llm import ModelStatus
from support import HTMX, FakeLLM, FakeModelServer, finished_conversation
from support.files import photo_with_gps

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><circle r="4"/></svg>'


def test_a_file_named_svg_holding_svg_is_text_and_one_named_png_is_refused():
    assert prepare("drawing.svg", SVG).kind == TEXT
    assert prepare("DRAWING.SVG", SVG).text.startswith("<svg")
    with pytest.raises(Refused, match="named like an image"):
        prepare("drawing.png", SVG)


def test_a_file_just_over_the_cap_is_said_in_bytes():
    caps = Caps(file_bytes=10 * MB, message_bytes=20 * MB)
    with pytest.raises(Refused) as refused:
        receive([("big.txt", b"a" * (10 * MB + 1))], caps)
    assert str(refused.value) == "big.txt is 10,485,761 bytes; a file may be at most 10,485,760 bytes."
    with pytest.raises(Refused) as refused:
        receive([("big.txt", b"a" * (11 * MB))], caps)
    assert str(refused.value) == "big.txt is 11 MB; a file may be at most 10 MB."
    with pytest.raises(Refused) as refused:
        receive(
            [("a.txt", b"a" * (5 * MB)), ("b.txt", b"b" * (5 * MB + 1))],
            Caps(file_bytes=10 * MB, message_bytes=10 * MB),
        )
    assert "come to 10,485,761 bytes; a message may carry 10,485,760 bytes." in str(refused.value)


def test_one_byte_is_one_byte():
    assert megabytes(1) == "1 byte" and megabytes(2) == "2 bytes" and megabytes(0) == "0 bytes"
    assert megabytes(1) == "1 byte" and megabytes(500) == "500 bytes"


def test_a_one_byte_file_is_shown_as_1_byte(make_app):
    app = make_app()
    app.extensions["llm"] = FakeLLM()
    client = app.test_client()
    cid, _ = finished_conversation(client)
    data = {"text": "One byte", "files": [(io.BytesIO(b"x"), "one.txt")]}
    assert client.post(f"/c/{cid}/messages", data=data, content_type="multipart/form-data").status_code == 303
    page = client.get(f"/c/{cid}").text
    assert "(1 byte)" in page and "1 bytes" not in page


def test_the_vision_hint_names_no_unavailable_model(make_app):
    with FakeModelServer(pieces=["Seen."], interval=0) as model:
        app = make_app(
            LLM_BACKEND="huggingface",
            HF_BASE_URL=model.url,
            HF_TOKEN="t",
            CHATBOT_MODELS=["fake-text", "fake-seeing-gone", "fake-seeing"],
            VISION_MODELS=["fake-seeing-gone", "fake-seeing"],
        )
        app.extensions["llm"].apply_check(
            [ModelStatus("fake-text", True), ModelStatus("fake-seeing-gone", False), ModelStatus("fake-seeing", True)]
        )
        data = {
            "text": "What is this?",
            "model": "fake-text",
            "files": [(io.BytesIO(photo_with_gps((40, 20))), "p.jpg")],
        }
        response = app.test_client().post("/new", data=data, content_type="multipart/form-data", headers=HTMX)
    assert response.status_code == 400
    assert "Pick one that can (fake-seeing)" in response.text and "fake-seeing-gone" not in response.text
