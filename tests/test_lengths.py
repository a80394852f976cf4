"""Length limits counted as the browser's maxlength counts them: a line break is one character (the form posts
CRLF; the server reads LF, and stores it), an emoji two (UTF-16 code units), for messages, edits,
instructions and titles. Both directions: what the browser lets through at the limit is accepted, one more is
refused."""

import pytest

from support import HTMX, FakeLLM, finished_conversation, stored_conversations

EMOJI = "😀"


@pytest.fixture
def app(make_app):
    """A limit of 400 characters a message; replies from a FAKE model (the model is not the point)."""
    app = make_app(MAX_MESSAGE_CHARS=400)
    app.extensions["llm"] = FakeLLM()
    return app


def lines(total, width=9):
    """Lines of `width` x's joined by CRLF, as a browser posts a textarea: `total` characters as maxlength counts."""
    count = (total + 1) // (width + 1)
    text = "\r\n".join(["x" * width] * count)
    text += "y" * (total - len(text.replace("\r\n", "\n")))
    assert len(text.replace("\r\n", "\n")) == total
    return text


def test_a_message_with_line_breaks_is_counted_and_stored_with_lf(client, app):
    cid, _ = finished_conversation(client)
    text = lines(399)  # 438 characters as posted
    assert client.post(f"/c/{cid}/messages", data={"text": text}).status_code == 303
    assert stored_conversations(app)[0]["messages"][2]["content"] == text.replace("\r\n", "\n")
    assert client.post("/new", data={"text": lines(399)}).status_code == 303


def test_a_message_of_emoji_counts_two_for_each(client, app):
    cid, _ = finished_conversation(client)
    assert client.post(f"/c/{cid}/messages", data={"text": EMOJI * 200}).status_code == 303  # 400 code units
    refused = client.post(f"/c/{cid}/messages", data={"text": EMOJI * 201}, headers=HTMX)
    assert refused.status_code == 413
    assert "That message is 402 characters (an emoji counts as two); the limit is 400." in refused.text
    assert client.post("/new", data={"text": EMOJI * 199 + "ab\r\n"}).status_code == 303  # 400: the CRLF is cut


def test_an_edit_is_counted_the_same_way(client, app):
    cid, _ = finished_conversation(client)
    question = stored_conversations(app)[0]["messages"][0]["id"]
    refused = client.post(f"/c/{cid}/messages/{question}/edit", data={"text": EMOJI * 201})
    assert refused.status_code == 413 and "402 characters" in refused.text
    text = lines(399) + "\r\n"
    assert client.post(f"/c/{cid}/messages/{question}/edit", data={"text": text}).status_code == 303
    assert stored_conversations(app)[0]["messages"][2]["content"] == text.strip().replace("\r\n", "\n")


def test_instructions_are_counted_the_same_way(client, app):
    cid, _ = finished_conversation(client)
    text = lines(4000)  # 4,399 characters as posted
    assert client.post(f"/c/{cid}/instructions", data={"instructions": text}).status_code == 303
    assert stored_conversations(app)[0]["instructions"] == text.replace("\r\n", "\n")
    assert client.post(f"/c/{cid}/instructions", data={"instructions": EMOJI * 2000}).status_code == 303
    refused = client.post(f"/c/{cid}/instructions", data={"instructions": EMOJI * 2001})
    assert (
        refused.status_code == 413 and "The instructions are 4,002 characters (an emoji counts as two)" in refused.text
    )


def test_a_title_is_counted_the_same_way(client, app):
    cid, _ = finished_conversation(client)
    assert client.post(f"/sidebar/{cid}/rename", data={"title": EMOJI * 50}).status_code in (200, 303)
    assert stored_conversations(app)[0]["title"] == EMOJI * 50
    refused = client.post(f"/sidebar/{cid}/rename", data={"title": EMOJI * 51})
    assert refused.status_code == 400 and "This one has 102 characters (an emoji counts as two)." in refused.text
    assert stored_conversations(app)[0]["title"] == EMOJI * 50
