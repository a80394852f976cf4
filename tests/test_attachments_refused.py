"""A send with files that is refused leaves no file in the store (the folder store, looked at on disk).

Each refusal the app can give a send after its files were read: the rate limit, the replies at once, the
day's token budget, the upload allowance, the caps on conversations and messages, a conversation gone,
and storage failing on the conversation's write (every retry of the compare-and-swap lost).
"""

import io
from pathlib import Path

import pytest

from chatbot.storage import Conflict, StorageUnavailable
from support import HTMX, BlockingLLM, finish_reply, stored_conversations
from support.files import photo_with_gps


def send(client, path="/new", text="With a photo and notes"):
    """Post the composer with two files, as htmx does (multipart)."""
    data = {"text": text, "files": [(io.BytesIO(photo_with_gps((80, 40))), "photo.jpg"), (io.BytesIO(b"n"), "a.md")]}
    return client.post(path, data=data, content_type="multipart/form-data", headers=HTMX)


def files_on_disk(app):
    """Every file under users/*/files/ in the folder store, as paths relative to its root."""
    root = Path(app.extensions["store"].root)
    return sorted(str(path.relative_to(root)) for path in root.glob("users/*/files/*"))


def first_exchange(app, client):
    """A first message with its files, its reply finished; return the conversation's id and its files."""
    response = send(client)
    assert response.status_code == 200
    cid = response.headers["HX-Push-Url"].rsplit("/", 1)[1]
    finish_reply(client, cid, stored_conversations(app)[0]["messages"][1]["id"])
    kept = files_on_disk(app)
    assert len(kept) == 4  # two files, each its bytes and what it is
    return cid, kept


@pytest.fixture
def vision_app(make_app):
    def make(**settings):
        return make_app(VISION_MODELS=["SmolLM2-135M-Instruct"], **settings)

    return make


def test_a_message_over_the_rate_limit_stores_no_file(vision_app):
    app = vision_app(MESSAGE_LIMIT="1 per minute")
    client = app.test_client()
    cid, kept = first_exchange(app, client)
    assert send(client, f"/c/{cid}/messages").status_code == 429
    assert files_on_disk(app) == kept


def test_a_message_over_the_replies_at_once_stores_no_file(vision_app):
    app = vision_app(MAX_REPLIES_AT_ONCE=1)
    app.extensions["llm"] = model = BlockingLLM()
    client = app.test_client()
    try:
        assert send(client).status_code == 200  # its reply holds the one slot
        kept = files_on_disk(app)
        assert send(client).status_code == 429
        assert files_on_disk(app) == kept and len(kept) == 4
    finally:
        model.release.set()


def test_a_message_over_the_days_token_budget_stores_no_file(vision_app):
    app = vision_app(DAILY_TOKEN_BUDGET=3)  # the fake model's reply is 5 pieces
    client = app.test_client()
    cid, kept = first_exchange(app, client)
    assert send(client, f"/c/{cid}/messages").status_code == 429
    assert files_on_disk(app) == kept


def test_a_message_over_the_upload_allowance_stores_no_file(vision_app):
    app = vision_app(DAILY_UPLOAD_BYTES=100)
    response = send(app.test_client())
    assert response.status_code == 429 and "allowance of uploads" in response.text
    assert files_on_disk(app) == []


def test_a_conversation_over_the_cap_stores_no_file(vision_app):
    app = vision_app(MAX_CONVERSATIONS=1)
    client = app.test_client()
    _, kept = first_exchange(app, client)
    response = send(client)
    assert response.status_code in (403, 409, 413) and "1 conversations" in response.text
    assert files_on_disk(app) == kept


def test_a_message_over_the_conversations_message_cap_stores_no_file(vision_app):
    app = vision_app(MAX_MESSAGES_PER_CONVERSATION=2)
    client = app.test_client()
    cid, kept = first_exchange(app, client)
    response = send(client, f"/c/{cid}/messages")
    assert response.status_code in (403, 409, 413) and "2 messages" in response.text
    assert files_on_disk(app) == kept


def test_a_message_to_a_conversation_deleted_meanwhile_stores_no_file(vision_app):
    app = vision_app()
    client = app.test_client()
    cid, _ = first_exchange(app, client)
    client.post(f"/sidebar/{cid}/delete")
    assert files_on_disk(app) == []
    assert send(client, f"/c/{cid}/messages").status_code == 404
    assert files_on_disk(app) == []


class ConversationWritesLose:
    """The real folder store, except that every write of a conversation loses its compare-and-swap (another
    writer always got there first): the send's write gives up after its retries."""

    def __init__(self, store):
        self.store, self.root = store, store.root

    def read(self, key):
        """Read from the real store."""
        return self.store.read(key)

    def write(self, key, data, **conditions):
        """Lose every conversation write; write anything else to the real store."""
        if "/conversations/" in key:
            raise Conflict(key)
        return self.store.write(key, data, **conditions)

    def delete(self, key):
        """Delete from the real store."""
        return self.store.delete(key)

    def keys(self, prefix=""):
        """The real store's keys."""
        return self.store.keys(prefix)


def test_a_message_whose_conversation_write_fails_stores_no_file(vision_app):
    app = vision_app()
    client = app.test_client()
    cid, kept = first_exchange(app, client)
    app.extensions["store"] = ConversationWritesLose(app.extensions["store"])
    for path in ("/new", f"/c/{cid}/messages"):
        assert send(client, path).status_code == 503
        assert files_on_disk(app) == kept


class FilesFailAfter(ConversationWritesLose):
    """The real folder store, failing (storage down) from its nth write of a file on."""

    def __init__(self, store, n):
        super().__init__(store)
        self.left = n

    def write(self, key, data, **conditions):
        """Fail once n writes of files were made; write anything else to the real store."""
        if "/files/" in key:
            if self.left == 0:
                raise StorageUnavailable("the store went down")
            self.left -= 1
        return self.store.write(key, data, **conditions)


def test_a_store_failing_between_two_files_keeps_neither(vision_app):
    app = vision_app()
    app.extensions["store"] = FilesFailAfter(app.extensions["store"], 3)  # the second file's bytes are written
    assert send(app.test_client()).status_code == 503
    assert files_on_disk(app) == [] and stored_conversations(app) == []
