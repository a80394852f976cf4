"""What the model reads when a message was sent while a reply was still being written, and where a message may
go: roles alternate in every request (some models' chat templates refuse two user turns in a row), and a
message follows a reply, never a user message that is answered already."""

import threading
import time

import pytest

from chatbot.conversations import Conversation, now
from chatbot.generation import Settings, build_prompt
from support import HTMX, FakeLLM, finish_reply, finished_conversation, start_conversation, stored_conversations


class HeldRecordingFakeLLM(FakeLLM):
    """A FAKE model: records every request's messages; its first reply says `first` then waits for `release`."""

    def __init__(self, first="Partial answer"):
        super().__init__()
        self.first, self.requests, self.release = first, [], threading.Event()

    def stream(self, messages, model=None, **params):
        """Record; the first reply holds after its first piece, the others answer as FakeLLM does."""
        self.requests.append(messages)
        if len(self.requests) == 1:
            if self.first:
                yield self.first
            self.release.wait(30)
        yield from self.pieces


@pytest.fixture
def app(make_app):
    """Replies from a FAKE model that holds its first reply; the text so far is saved every 0.2 s."""
    app = make_app(REPLY_SAVE_SECONDS=0.2, REPLY_LEASE_SECONDS=5, STOP_POLL_SECONDS=0.05, RENDER_SECONDS=0.05)
    app.extensions["llm"] = HeldRecordingFakeLLM()
    yield app
    app.extensions["llm"].release.set()


def wait_for(condition, seconds=10):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def roles(messages):
    return [message["role"] for message in messages]


def test_a_message_sent_while_the_reply_streams_follows_what_was_written_of_it(client, app):
    llm = app.extensions["llm"]
    cid, streaming = start_conversation(client, "Tell me a story")
    wait_for(lambda: stored_conversations(app)[0]["messages"][1]["content"] == "Partial answer")
    response = client.post(f"/c/{cid}/messages", data={"text": "Shorter, please", "after": streaming}, headers=HTMX)
    assert response.status_code == 200
    wait_for(lambda: len(llm.requests) == 2)
    assert roles(llm.requests[1]) == ["user", "assistant", "user"]
    assert [message["content"] for message in llm.requests[1]] == [
        "Tell me a story",
        "Partial answer",
        "Shorter, please",
    ]
    llm.release.set()
    finish_reply(client, cid, streaming)


def test_with_nothing_written_yet_the_two_questions_reach_the_model_as_one_turn(client, app):
    llm = app.extensions["llm"]
    llm.first = ""
    cid, streaming = start_conversation(client, "First question")
    wait_for(lambda: len(llm.requests) == 1)
    client.post(f"/c/{cid}/messages", data={"text": "Second question", "after": streaming}, headers=HTMX)
    wait_for(lambda: len(llm.requests) == 2)
    assert llm.requests[1] == [{"role": "user", "content": "First question\n\nSecond question"}]
    llm.release.set()
    finish_reply(client, cid, streaming)


def test_a_message_after_an_answered_user_message_is_a_404(client, app):
    app.extensions["llm"].release.set()
    cid, _ = finished_conversation(client, "Question")
    question = stored_conversations(app)[0]["messages"][0]["id"]
    for headers in ({}, HTMX):
        response = client.post(f"/c/{cid}/messages", data={"text": "Chained", "after": question}, headers=headers)
        assert response.status_code == 404
    assert len(stored_conversations(app)[0]["messages"]) == 2


def test_a_fork_that_ends_with_a_question_can_be_sent_to_and_the_model_reads_both(client, app):
    llm = app.extensions["llm"]
    llm.release.set()
    cid, _ = finished_conversation(client, "Question")
    question = stored_conversations(app)[0]["messages"][0]["id"]
    fork = client.post(f"/c/{cid}/messages/{question}/fork").headers["Location"].rsplit("/", 1)[1]
    leaf = next(document for document in stored_conversations(app) if document["id"] == fork)["current"]
    assert client.post(f"/c/{fork}/messages", data={"text": "And another", "after": leaf}).status_code == 303
    assert llm.requests[-1] == [{"role": "user", "content": "Question\n\nAnd another"}]


def test_build_prompt_merges_turns_of_one_role_with_images_kept():
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}
    history = [
        {"role": "user", "content": [{"type": "text", "text": "Look"}, image]},
        {"role": "user", "content": "And this?"},
        {"role": "assistant", "content": "Hm"},
        {"role": "assistant", "content": "Yes"},
        {"role": "user", "content": "So?"},
    ]
    prompt = build_prompt(history, "gemma-3", Settings(system_prompt="Be kind."))
    assert roles(prompt) == ["user", "assistant", "user"]
    assert prompt[0]["content"] == [
        {"type": "text", "text": "Be kind.\n\nLook"},
        image,
        {"type": "text", "text": "And this?"},
    ]
    assert prompt[1]["content"] == "Hm\n\nYes"


def test_the_history_holds_a_streaming_reply_as_far_as_it_came_and_never_a_failed_one():
    conversation = Conversation(id="c" * 16, model="m", created_at=now(), updated_at=now())
    streaming = conversation.add_exchange("One", "m")
    streaming.save_progress("So far")
    failed = conversation.add_exchange("Two", "m")
    failed.finish("Half", "error", "The model failed")
    last = conversation.add_exchange("Three", "m")
    assert conversation.history_before(last.id) == [
        {"role": "user", "content": "One"},
        {"role": "assistant", "content": "So far"},
        {"role": "user", "content": "Two"},
        {"role": "user", "content": "Three"},
    ]
