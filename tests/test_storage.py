"""The Store contract, for the folder store and the S3 store (moto's server over HTTP)."""

import json
import threading

import pytest

from chatbot import keys
from chatbot.conversations import Conversations, new_id
from chatbot.storage import Conflict, open_store, update_json
from support import new_bucket


@pytest.fixture(params=["folder", pytest.param("s3", marks=pytest.mark.s3)])
def store(request, tmp_path, monkeypatch):
    if request.param == "folder":
        return open_store(f"file://{tmp_path}/store")
    s3 = request.getfixturevalue("s3_server")
    bucket = new_bucket(s3, "test")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.url)
    return open_store(f"s3://{bucket}/chatbot")


def test_missing_key_reads_as_none(store):
    assert store.read("users/nobody/index.json") is None


def test_write_then_read_returns_data_and_a_version(store):
    version = store.write("a/b.json", b'{"x": 1}')
    data, read_version = store.read("a/b.json")
    assert data == b'{"x": 1}' and read_version == version


def test_write_with_stale_version_conflicts(store):
    first = store.write("doc.json", b"1")
    store.write("doc.json", b"2", version=first)
    with pytest.raises(Conflict):
        store.write("doc.json", b"3", version=first)
    assert store.read("doc.json")[0] == b"2"


def test_create_of_an_existing_key_conflicts(store):
    store.write("doc.json", b"1", create=True)
    with pytest.raises(Conflict):
        store.write("doc.json", b"2", create=True)
    assert store.read("doc.json")[0] == b"1"


def test_delete_and_keys(store):
    store.write("users/u/one.json", b"1")
    store.write("users/u/two.json", b"2")
    store.write("other.json", b"3")
    assert sorted(store.keys("users/")) == ["users/u/one.json", "users/u/two.json"]
    store.delete("users/u/one.json")
    store.delete("users/u/missing.json")
    assert list(store.keys("users/")) == ["users/u/two.json"]


@pytest.mark.parametrize("key", ["../escape.json", "/etc/passwd", "a/../../b", "a//b", ""])
def test_unsafe_keys_are_refused(store, key):
    with pytest.raises(ValueError):
        store.read(key)


def test_concurrent_updates_lose_nothing(store):
    update_json(store, "counter.json", lambda document: [])

    def add(worker):
        for index in range(10):
            update_json(store, "counter.json", lambda items, index=index: (items or []) + [f"{worker}-{index}"])

    threads = [threading.Thread(target=add, args=(worker,)) for worker in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(json.loads(store.read("counter.json")[0])) == 20


def test_two_threads_appending_25_messages_each_keep_all_50(store):
    conversations = Conversations(store, new_id())
    conversation, _ = conversations.start("first", "model")

    def send(worker):
        for index in range(25):
            # An exchange adds the user's message and its pending reply.
            conversations.add_exchange(conversation.id, f"{worker} {index}", "model")

    threads = [threading.Thread(target=send, args=(worker,)) for worker in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    messages = conversations.get(conversation.id).messages
    user_texts = {message.content for message in messages if message.role == "user"}
    assert len(user_texts) == 51  # the first message and 2 x 25
    assert len(messages) == 102
    assert conversations.index()[0]["id"] == conversation.id


def test_index_is_plain_json_and_its_first_page_reads_alone(store):
    conversations = Conversations(store, new_id())
    started = [conversations.start(f"message {number}", "model")[0].id for number in range(5)]
    stored = json.loads(store.read(keys.index(conversations.uid))[0])
    assert [entry["id"] for entry in stored] == started[::-1]
    assert conversations.index(limit=2) == stored[:2]
    assert conversations.index(limit=10) == stored == conversations.index()
    for entry in stored:
        conversations.delete(entry["id"])
    assert conversations.index(limit=2) == [] == conversations.index()
