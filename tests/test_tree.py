"""Conversations as trees, on the domain objects and the repository (folder store), without Flask."""

import json

import pytest

from chatbot.conversations import DONE, CapReached, Conversation, Conversations, now
from chatbot.generation import Settings, build_prompt
from chatbot.storage.local import LocalStore

LEASE = 20


def three_exchanges():
    """A conversation of three finished exchanges; return it and its replies."""
    conversation = Conversation(id="c" * 16, model="m", created_at=now(), updated_at=now())
    replies = []
    for number in (1, 2, 3):
        reply = conversation.add_exchange(f"Question {number}", "m")
        reply.finish(f"Answer {number}", DONE)
        replies.append(reply)
    return conversation, replies


def texts(conversation):
    return [message.content for message in conversation.path]


def test_editing_a_middle_message_makes_a_new_branch_and_keeps_the_old_one():
    conversation, replies = three_exchanges()
    second_question = replies[1].parent
    reply = conversation.edit(second_question, "Question 2, better", "m")
    reply.finish("Answer 2, better", DONE)
    assert texts(conversation) == ["Question 1", "Answer 1", "Question 2, better", "Answer 2, better"]
    assert len(conversation.messages) == 8  # nothing was removed
    version = conversation.versions()[reply.parent]
    assert (version.place, version.total, version.previous, version.next) == (2, 2, second_question, None)
    # The model reads the new branch only.
    history = conversation.history_before(reply.id)
    assert [turn["content"] for turn in history] == ["Question 1", "Answer 1", "Question 2, better"]
    prompt = build_prompt(history, "m", Settings())
    assert "Question 3" not in json.dumps(prompt)


def test_regenerating_the_first_reply_adds_a_version_of_it():
    conversation, replies = three_exchanges()
    again = conversation.restart_reply(replies[0].id, LEASE)
    again.finish("Answer 1, again", DONE)
    assert texts(conversation) == ["Question 1", "Answer 1, again"]
    versions = conversation.versions()
    assert list(versions) == [again.id] and (versions[again.id].place, versions[again.id].total) == (2, 2)
    assert replies[0].content == "Answer 1"
    assert conversation.history_before(again.id) == [{"role": "user", "content": "Question 1"}]


def test_switching_versions_shows_the_newest_leaf_under_the_chosen_one():
    conversation, replies = three_exchanges()
    second_question = replies[1].parent
    new_reply = conversation.edit(second_question, "Question 2, better", "m")
    new_reply.finish("Answer 2, better", DONE)
    assert conversation.switch(second_question)
    assert texts(conversation)[-2:] == ["Question 3", "Answer 3"]  # down to the old branch's newest leaf
    assert conversation.versions()[second_question].place == 1
    assert conversation.switch(new_reply.parent)
    assert conversation.current == new_reply.id
    assert conversation.switch(new_reply.parent) is False  # already shown


def test_sending_adds_below_the_leaf_shown_or_the_one_named():
    conversation, replies = three_exchanges()
    conversation.edit(replies[1].parent, "Other", "m").finish("Other answer", DONE)
    reply = conversation.add_exchange("On the old branch", "m", after=replies[2].id)
    assert texts(conversation)[-4:] == ["Question 3", "Answer 3", "On the old branch", ""]
    assert conversation.current == reply.id


def test_old_documents_read_as_one_path_and_are_rewritten_on_the_next_write(tmp_path):
    store = LocalStore(str(tmp_path))
    conversations = Conversations(store, "u" * 16)
    old = {
        "id": "c" * 16,
        "model": "m",
        "created_at": now(),
        "updated_at": now(),
        "title": "Old",
        "messages": [
            {"id": f"{n}" * 16, "role": role, "content": f"text {n}", "created_at": now(), "status": "done"}
            for n, role in zip(range(1, 5), ["user", "assistant", "user", "assistant"], strict=True)
        ],
    }
    key = f"users/{'u' * 16}/conversations/{'c' * 16}.json"
    store.write(key, json.dumps(old).encode())
    conversation = conversations.get("c" * 16)
    assert texts(conversation) == ["text 1", "text 2", "text 3", "text 4"]
    assert conversation.current == "4" * 16 and conversation.messages[1].parent == "1" * 16
    assert "version" not in json.loads(store.read(key)[0])  # reading writes nothing
    conversations.rename("c" * 16, "New")
    stored = json.loads(store.read(key)[0])
    assert stored["version"] == 2 and stored["current"] == "4" * 16
    assert [message["parent"] for message in stored["messages"]] == [None, "1" * 16, "2" * 16, "3" * 16]


def test_the_cap_counts_every_message_in_the_tree(tmp_path):
    conversations = Conversations(LocalStore(str(tmp_path)), "u" * 16, max_messages=5)
    conversation, reply = conversations.start("Hello", "m")
    conversations.finish_reply(conversation.id, reply.id, "Hi", DONE)
    conversations.edit(conversation.id, reply.parent, "Hello again", "m")  # 4 messages, 2 on the path
    with pytest.raises(CapReached):
        conversations.edit(conversation.id, reply.parent, "Third try", "m")
    conversations.restart_reply(conversation.id, reply.id, LEASE)  # 5
    with pytest.raises(CapReached):
        conversations.add_exchange(conversation.id, "More", "m")
    assert len(conversations.get(conversation.id).messages) == 5


def test_fork_copies_the_path_up_to_a_message(tmp_path):
    conversations = Conversations(LocalStore(str(tmp_path)), "u" * 16)
    conversation, reply = conversations.start("Hello", "m")
    conversations.finish_reply(conversation.id, reply.id, "Hi", DONE)
    conversations.set_auto_title(conversation.id, "Greetings")
    conversations.set_instructions(conversation.id, "Be brief.")
    conversation, second = conversations.add_exchange(conversation.id, "Again", "m")
    conversations.finish_reply(conversation.id, second.id, "Hi again", DONE)
    fork = conversations.fork(conversation.id, reply.id)
    assert fork.id != conversation.id and fork.title == "Fork of Greetings"
    assert texts(fork) == ["Hello", "Hi"] and fork.instructions == "Be brief."
    assert len(conversations.get(conversation.id).messages) == 4  # the source is unchanged


def test_switch_is_stored_and_does_not_move_the_conversation_in_the_sidebar(tmp_path):
    conversations = Conversations(LocalStore(str(tmp_path)), "u" * 16)
    conversation, reply = conversations.start("Hello", "m")
    conversations.finish_reply(conversation.id, reply.id, "Hi", DONE)
    conversation, again = conversations.restart_reply(conversation.id, reply.id, LEASE)
    conversations.finish_reply(conversation.id, again.id, "Hello!", DONE)
    before = conversations.index()
    conversations.switch(conversation.id, reply.id)
    assert conversations.get(conversation.id).current == reply.id
    assert conversations.index() == before


def test_search_finds_text_on_any_branch_and_names_the_message(tmp_path):
    conversations = Conversations(LocalStore(str(tmp_path)), "u" * 16)
    conversation, reply = conversations.start("Hello", "m")
    conversations.finish_reply(conversation.id, reply.id, "An aardvark", DONE)
    conversation, again = conversations.restart_reply(conversation.id, reply.id, LEASE)
    conversations.finish_reply(conversation.id, again.id, "A zebra", DONE)
    [(entry, snippet, mid)] = conversations.search("aardvark")
    assert (entry["id"], snippet, mid) == (conversation.id, "An aardvark", reply.id)


def test_instructions_follow_the_site_prompt_and_fold_into_the_first_turn_for_gemma():
    settings = Settings(system_prompt="Site rules.")
    history = [{"role": "user", "content": "hi"}]
    assert build_prompt(history, "qwen", settings, "Be brief.")[0] == {
        "role": "system",
        "content": "Site rules.\n\nBe brief.",
    }
    assert build_prompt(history, "gemma-3", Settings(), "Be brief.") == [{"role": "user", "content": "Be brief.\n\nhi"}]


def test_files_stay_with_their_message_on_every_branch():
    conversation, replies = three_exchanges()
    photo = {"id": "f" * 16, "name": "photo.png", "type": "image/png", "size": 10, "kind": "image"}
    notes = {"id": "n" * 16, "name": "notes.txt", "type": "text/plain", "size": 5, "kind": "text"}
    with_notes = conversation.add_exchange("Look", "m", after=replies[0].id, attachments=[notes])
    with_notes.finish("Seen", DONE)
    edited = conversation.edit(with_notes.parent, "Look again", "m")
    assert conversation.message(edited.parent).attachments == [notes]  # the new version keeps the files
    # The model reads the path shown, each turn with its own files; the other branch's are not sent.
    history = conversation.history_before(edited.id)
    assert [turn.get("attachments") for turn in history] == [None, None, [notes]]
    conversation.message(replies[0].parent).attachments = [photo]
    assert conversation.history_before(replies[2].id)[0]["attachments"] == [photo]
    assert all("attachments" not in turn for turn in conversation.history_before(replies[2].id)[1:])


def test_the_stored_document_holds_every_field_of_every_message_as_dataclasses_would():
    # to_dict is built by hand for speed: it must say exactly what dataclasses.asdict says.
    from dataclasses import asdict

    conversation = Conversation("c" * 16, "model", "t0", "t0", title="A title", instructions="Be brief.")
    conversation.add_exchange("Hello", "model", attachments=[{"id": "f" * 16, "name": "a.txt", "type": "text/plain"}])
    assert conversation.to_dict() == asdict(conversation)
