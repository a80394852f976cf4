"""The chat loop through Flask's test client, with the real local model and folder store."""

import html
import re

import pytest

from chatbot.llm import LLM, Unavailable
from chatbot.render import render_markdown
from support import (
    HTMX,
    assemble,
    finish_reply,
    finished_conversation,
    parse_events,
    start_conversation,
    stored_conversations,
    stream_url,
)


class FakeLLMThatMustNotRun(LLM):
    """A fake model that fails the test if called: proves a saved reply is not generated again."""

    def __init__(self):
        super().__init__(["SmolLM2-135M-Instruct"])

    def stream(self, *args, **kwargs):
        raise AssertionError("the model was run again")

    complete = stream


class FakeFailingLLM(LLM):
    """A fake model that is down: the test is about how the chat shows the failure."""

    def __init__(self):
        super().__init__(["SmolLM2-135M-Instruct"])

    def stream(self, *args, **kwargs):
        yield "Partial "
        raise Unavailable("server said 503")

    def complete(self, *args, **kwargs):
        raise Unavailable("server said 503")


def test_first_visit_shows_an_empty_chat_with_composer(client):
    response = client.get("/")
    assert response.status_code == 200
    assert 'name="text"' in response.text
    assert "New chat" in response.text
    assert 'id="sidebar"' in response.text
    assert "No conversations yet." in response.text


@pytest.mark.model
def test_send_without_javascript_answers_then_redirects(client, app):
    response = client.post("/new", data={"text": "What is the capital of France?"})
    assert response.status_code == 303
    location = response.headers["Location"]
    assert re.match(r"^/c/[A-Za-z0-9_-]{16}#m-[A-Za-z0-9_-]{16}$", location)

    page = client.get(location.split("#")[0])
    assert "What is the capital of France?" in page.text
    assert 'data-role="assistant" data-status="done"' in page.text

    [conversation] = stored_conversations(app)
    user, reply = conversation["messages"]
    assert (user["role"], reply["role"]) == ("user", "assistant")
    assert reply["status"] == "done" and reply["content"].strip()
    assert reply["model"] == "SmolLM2-135M-Instruct"
    assert conversation["title"] and len(conversation["title"].split()) <= 6


def test_htmx_send_answers_user_bubble_and_streaming_reply(client):
    cid, mid = start_conversation(client)
    response = client.post(f"/c/{cid}/messages", data={"text": "And another <b>thing</b>"}, headers=HTMX)
    assert response.status_code == 200
    assert 'data-role="user"' in response.text
    assert "And another &lt;b&gt;thing&lt;/b&gt;" in response.text
    assert 'data-status="streaming"' in response.text
    assert 'sse-connect="/c/' in response.text and 'sse-close="done"' in response.text
    # Screen readers hear the finished reply once, not every token as it streams.
    assert 'class="content markdown streaming" aria-hidden="true"' in response.text


@pytest.mark.model
def test_stream_sends_tokens_then_rendered_reply_title_and_done(client, app):
    cid, mid = start_conversation(client, "Write one sentence about the sea.")
    response = client.get(stream_url(cid, mid))
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    events = parse_events(response.text)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "sidebar", "the conversation is listed while the model starts"
    assert f'data-conversation-id="{cid}"' in events[0][1]
    assert kinds.count("render") >= 2, "the reply should arrive in several pieces"
    assert kinds[-3:] == ["final", "title", "done"]
    streamed = assemble(data for kind, data in events if kind == "render")

    [conversation] = stored_conversations(app)
    reply = conversation["messages"][1]
    assert reply["status"] == "done"
    assert str(render_markdown(reply["content"])) == streamed
    final = dict(events)["final"]
    assert 'data-status="done"' in final and 'class="content markdown"' in final
    title_event = dict(events)["title"]
    assert f'data-conversation-id="{cid}"' in title_event
    assert html.escape(conversation["title"]) in title_event


@pytest.mark.model
def test_stream_of_a_finished_reply_returns_it_without_running_the_model(client, app):
    cid, mid = start_conversation(client)
    finish_reply(client, cid, mid)  # generates and saves the reply
    saved = stored_conversations(app)[0]["messages"][1]["content"]

    app.extensions["llm"] = FakeLLMThatMustNotRun()
    events = parse_events(client.get(stream_url(cid, mid)).text)
    assert [kind for kind, _ in events] == ["final", "title", "done"]
    assert stored_conversations(app)[0]["messages"][1]["content"] == saved


@pytest.mark.model
def test_the_reply_completes_when_the_client_goes_away(client, app):
    cid, mid = start_conversation(client, "Count from one to twenty in words.")
    response = client.get(stream_url(cid, mid), buffered=False)
    chunks = iter(response.response)
    received = [next(chunks) for _ in range(3)]
    assert any(b"event: render" in chunk for chunk in received)
    response.close()  # what the server sees when the browser goes away

    app.extensions["replies"].wait_for_jobs(60)
    reply = stored_conversations(app)[0]["messages"][1]
    assert reply["status"] == "done"
    assert reply["content"].strip()


def test_model_failure_shows_error_with_retry_and_keeps_the_message(client, app):
    app.extensions["llm"] = FakeFailingLLM()
    cid, mid = start_conversation(client, "Please keep this message")
    events = dict(parse_events(client.get(stream_url(cid, mid)).text))
    assert 'data-status="error"' in events["final"]
    assert "unavailable" in events["final"]
    assert "Retry" in events["final"]

    [conversation] = stored_conversations(app)
    user, reply = conversation["messages"]
    assert user["content"] == "Please keep this message"
    assert reply["status"] == "error" and reply["content"] == "Partial "


@pytest.mark.model
def test_retry_after_failure_generates_the_reply(client, app, local_llm):
    app.extensions["llm"] = FakeFailingLLM()
    cid, mid = start_conversation(client)
    finish_reply(client, cid, mid)
    app.extensions["llm"] = local_llm
    response = client.post(f"/c/{cid}/messages/{mid}/regenerate", headers=HTMX)
    assert 'data-status="streaming"' in response.text
    events = parse_events(client.get(stream_url(cid, mid)).text)
    assert 'data-status="done"' in dict(events)["final"]


def test_most_recent_conversation_opens_first(client):
    # Each reply's end counts as activity too, so each conversation is read to its end first.
    first, _ = finished_conversation(client, "first")
    second, _ = finished_conversation(client, "second")
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/c/{second}"
    page = client.get(f"/c/{second}").text
    assert page.index(f'data-conversation-id="{second}"') < page.index(f'data-conversation-id="{first}"')


def test_chat_pane_fragment_for_htmx_and_page_otherwise(client):
    cid, _ = start_conversation(client)
    fragment = client.get(f"/c/{cid}", headers={**HTMX, "HX-Target": "chat"})
    assert "<html" not in fragment.text and 'id="messages"' in fragment.text
    assert 'hx-swap-oob="true"' in fragment.text
    assert "HX-Target" in fragment.headers["Vary"]
    page = client.get(f"/c/{cid}")
    assert "<html" in page.text


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_blank_message_is_rejected_and_nothing_stored(client, app, text):
    response = client.post("/new", data={"text": text}, headers=HTMX)
    assert response.status_code == 400
    assert "Type a message first." in response.text
    assert response.headers["HX-Retarget"] == "#composer-error"
    assert stored_conversations(app) == []


def test_too_long_message_is_413_and_nothing_stored(client, app):
    cid, _ = start_conversation(client)
    limit = app.config["MAX_MESSAGE_CHARS"]
    response = client.post(f"/c/{cid}/messages", data={"text": "x" * (limit + 1)}, headers=HTMX)
    assert response.status_code == 413
    assert "the limit is 8,000" in response.text
    assert len(stored_conversations(app)[0]["messages"]) == 2


def test_too_long_message_without_javascript_keeps_the_draft(client, app):
    response = client.post("/new", data={"text": "y" * 8001})
    assert response.status_code == 413
    assert "y" * 8001 in response.text  # the draft is back in the composer
    assert stored_conversations(app) == []


def test_unknown_model_is_rejected(client, app):
    response = client.post("/new", data={"text": "hi", "model": "evil/model"}, headers=HTMX)
    assert response.status_code == 400
    assert stored_conversations(app) == []


@pytest.mark.parametrize(
    "path",
    [
        "/c/not-an-id",
        "/c/..%2F..%2Fetc",
        "/c/AAAAAAAAAAAAAAAA",
        "/c/AAAAAAAAAAAAAAAA/messages/AAAAAAAAAAAAAAAA/stream",
    ],
)
def test_malformed_or_unknown_conversation_is_404(client, path):
    assert client.get(path).status_code == 404


def test_other_users_conversation_is_404(app):
    owner, stranger = app.test_client(), app.test_client()
    cid, mid = start_conversation(owner, "my secret plan")
    for response in (
        stranger.get(f"/c/{cid}"),
        stranger.get(stream_url(cid, mid)),
        stranger.post(f"/c/{cid}/messages", data={"text": "hi"}),
    ):
        assert response.status_code == 404
        assert "my secret plan" not in response.text
    assert cid not in stranger.get("/").text


def test_post_without_csrf_token_is_400(make_app):
    app = make_app(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    client.get("/")
    response = client.post("/new", data={"text": "hello"})
    assert response.status_code == 400
    assert stored_conversations(app) == []


def test_post_with_csrf_header_is_accepted(make_app):
    app = make_app(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    page = client.get("/").text
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    response = client.post("/new", data={"text": "hello"}, headers={**HTMX, "X-CSRFToken": token})
    assert response.status_code == 200


def test_model_picker_offers_the_configured_models(client):
    page = client.get("/").text
    assert '<option value="SmolLM2-135M-Instruct"' in page


def test_missing_local_model_is_explained_in_the_reply(client, app, tmp_path):
    from chatbot.llm.local import LocalLLM

    app.extensions["llm"] = LocalLLM(model_path=str(tmp_path / "missing.gguf"))
    app.extensions["llm"].models = ["SmolLM2-135M-Instruct"]
    cid, mid = start_conversation(client)
    final = dict(finish_reply(client, cid, mid))["final"]
    assert 'data-status="error"' in final and "The local model is not installed" in final
