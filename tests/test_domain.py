"""A reply's state changes on the domain objects, without Flask or storage."""

from datetime import datetime, timedelta, timezone

import pytest

from chatbot.conversations import (
    DONE,
    ERROR,
    INTERRUPTED,
    STOPPED,
    STREAMING,
    Conversation,
    Message,
    NotFound,
    now,
)

# A reply's lease in seconds, as the app passes it (REPLY_LEASE_SECONDS).
LEASE = 20


def conversation_with_reply(status=DONE, content="An answer."):
    conversation = Conversation(id="c" * 16, model="m", created_at=now(), updated_at=now())
    reply = conversation.add_exchange("A question?", "m")
    reply.finish(content, status)
    return conversation, reply


def test_add_exchange_appends_the_message_and_a_streaming_reply():
    conversation = Conversation(id="c" * 16, model="old", created_at=now(), updated_at=now())
    reply = conversation.add_exchange("Hello", "new-model")
    user = conversation.messages[0]
    assert (user.role, user.content) == ("user", "Hello")
    assert (reply.role, reply.status, reply.model, reply.content) == ("assistant", STREAMING, "new-model", "")
    assert reply.is_running(LEASE)
    assert conversation.model == "new-model"
    assert conversation.last_user_id == user.id and conversation.last_reply_id == reply.id


def test_a_reply_whose_lease_ran_out_is_not_running_and_reads_as_interrupted():
    conversation = Conversation(id="c" * 16, model="m", created_at=now(), updated_at=now())
    reply = conversation.add_exchange("Hello", "m")
    reply.save_progress("Half an ans")
    later = datetime.now(timezone.utc) + timedelta(seconds=LEASE + 1)
    assert reply.is_running(LEASE) and not reply.is_running(LEASE, at=later)
    reply.saved_at = (datetime.now(timezone.utc) - timedelta(seconds=LEASE + 1)).isoformat()
    assert conversation.interrupt_dead_replies(LEASE)
    assert (reply.status, reply.content) == (INTERRUPTED, "Half an ans")
    assert reply.error


def test_save_progress_only_while_streaming():
    _, reply = conversation_with_reply(STOPPED, "kept")
    assert reply.save_progress("more") is False
    assert reply.content == "kept"


def test_finish_keeps_the_text_and_ends_the_lease():
    conversation = Conversation(id="c" * 16, model="m", created_at=now(), updated_at=now())
    reply = conversation.add_exchange("Hello", "m")
    reply.finish("partial", ERROR, "The model failed.")
    assert (reply.content, reply.status, reply.error, reply.saved_at) == ("partial", ERROR, "The model failed.", None)
    assert reply.finished and not reply.is_running(LEASE)


@pytest.mark.parametrize("status", [ERROR, STOPPED, INTERRUPTED])
def test_a_failed_reply_with_nothing_after_it_is_retried_in_place(status):
    conversation, first = conversation_with_reply(status, "partial")
    restarted = conversation.restart_reply(first.id, LEASE)
    assert restarted is first and (first.status, first.content, first.error) == (STREAMING, "", None)
    assert len(conversation.messages) == 2


@pytest.mark.parametrize("status", [ERROR, STOPPED, INTERRUPTED])
def test_a_failed_reply_that_others_follow_is_retried_as_a_new_version(status):
    conversation, first = conversation_with_reply(status, "partial")
    conversation.add_exchange("Next", "m").finish("Second", DONE)
    restarted = conversation.restart_reply(first.id, LEASE)
    assert restarted is not first and restarted.parent == first.parent and restarted.status == STREAMING
    assert (first.status, first.content) == (status, "partial")
    assert conversation.path[-1] is restarted


def test_any_finished_reply_can_be_regenerated_as_a_new_version():
    conversation, first = conversation_with_reply(DONE)
    second = conversation.add_exchange("Next", "m")
    second.finish("Second", DONE)
    again = conversation.restart_reply(first.id, LEASE)
    assert again.parent == first.parent and first.content == "An answer."
    assert conversation.restart_reply(second.id, LEASE).parent == second.parent


def test_a_running_reply_is_not_restarted():
    conversation = Conversation(id="c" * 16, model="m", created_at=now(), updated_at=now())
    reply = conversation.add_exchange("Hello", "m")
    reply.save_progress("so far")
    assert conversation.restart_reply(reply.id, LEASE) is None
    assert reply.content == "so far"


def test_a_user_message_is_not_a_reply():
    conversation, _ = conversation_with_reply()
    with pytest.raises(NotFound):
        conversation.restart_reply(conversation.last_user_id, LEASE)


def test_edit_adds_a_version_of_the_message_and_a_reply_under_it():
    conversation, old_reply = conversation_with_reply()
    question = conversation.last_user_id
    reply = conversation.edit(question, "A better question?", "m2")
    edited = conversation.message(reply.parent)
    assert edited.id != question and edited.parent is None and edited.content == "A better question?"
    assert [message.id for message in conversation.path] == [edited.id, reply.id]
    assert conversation.message(question).content == "A question?" and old_reply.content == "An answer."
    assert reply.status == STREAMING and reply.model == "m2"


def test_stop_in_the_domain_only_ends_a_reply_no_job_runs():
    conversation = Conversation(id="c" * 16, model="m", created_at=now(), updated_at=now())
    reply = conversation.add_exchange("Hello", "m")
    assert conversation.stop_reply(reply.id, LEASE) is False  # a live job stops it (and saves its text)
    reply.saved_at = "2020-01-01T00:00:00+00:00"  # its job died
    assert conversation.stop_reply(reply.id, LEASE) is True
    assert reply.status == STOPPED
    assert conversation.stop_reply(reply.id, LEASE) is False


def test_auto_title_never_overwrites_a_title():
    conversation, _ = conversation_with_reply()
    assert conversation.set_auto_title("Generated") and conversation.title_source == "auto"
    assert conversation.set_auto_title("Another") is False
    assert conversation.display_title == "Generated"


def test_messages_of_older_versions_load():
    document = {
        "id": "c" * 16,
        "model": "m",
        "created_at": now(),
        "updated_at": now(),
        "messages": [
            {
                "id": "m" * 16,
                "role": "assistant",
                "content": "x",
                "created_at": now(),
                "status": "pending",
                "claimed_at": None,
                "stop_requested": False,
            }
        ],
    }
    conversation = Conversation.from_dict(document)
    assert isinstance(conversation.messages[0], Message)
    assert conversation.interrupt_dead_replies(LEASE)
    assert conversation.messages[0].status == INTERRUPTED


def test_reply_before_a_message_is_the_last_assistant_message_before_it():
    conversation, first = conversation_with_reply()
    second = conversation.add_exchange("Next", "m")
    question = conversation.messages[-2]
    assert conversation.reply_before(question.id) is first
    assert conversation.reply_before(conversation.messages[0].id) is None
    assert conversation.reply_before(second.id) is first
