"""The app on S3: moto's standalone server over HTTP, reached by plain boto3 through endpoint_url."""

import json
import re
import threading

import pytest

from chatbot import create_app, keys
from chatbot.accounts import create_account
from chatbot.conversations import DONE, Conversations, new_id
from chatbot.storage import open_store
from support import (
    HTMX,
    TEST_SETTINGS,
    FaultProxy,
    as_guest,
    bucket_name,
    finish_reply,
    guest_uid,
    new_bucket,
    open_stream_at_first_token,
    seed_conversations,
    start_conversation,
)

pytestmark = pytest.mark.s3


@pytest.fixture
def bucket(s3_server, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    return new_bucket(s3_server)


@pytest.fixture
def s3_app(make_app, bucket):
    return make_app(STORAGE_URL=f"s3://{bucket}/chatbot")


def count_requests(store):
    """Count the HTTP requests the store's boto3 client sends, through botocore's event hooks."""
    sent = []
    store.client.meta.events.register("before-send.s3.*", lambda **kwargs: sent.append(kwargs["request"].url))
    return sent


@pytest.mark.model
def test_conversation_is_a_json_object_readable_with_plain_boto3(s3_app, s3_server, bucket):
    client = s3_app.test_client()
    cid, mid = start_conversation(client, "Stored on S3?")
    finish_reply(client, cid, mid)

    s3 = s3_server.client()
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    [conversation_key] = [key for key in keys if f"/conversations/{cid}.json" in key]
    assert re.match(r"^chatbot/users/[A-Za-z0-9_-]{16}/conversations/", conversation_key)
    document = json.loads(s3.get_object(Bucket=bucket, Key=conversation_key)["Body"].read())
    assert document["messages"][0]["content"] == "Stored on S3?"
    assert document["messages"][1]["status"] == "done" and document["messages"][1]["content"]
    index_key = conversation_key.split("/conversations/")[0] + "/index.json"
    index = json.loads(s3.get_object(Bucket=bucket, Key=index_key)["Body"].read())
    assert index[0]["id"] == cid and index[0]["title"] == document["title"]


@pytest.mark.parametrize("path", ["/", "/c/{cid}"])
def test_page_view_costs_the_same_requests_at_10_and_1000_conversations(s3_app, path):
    store = s3_app.extensions["store"]
    counts = {}
    for count in (10, 1000):
        uid = new_id()
        client = as_guest(s3_app.test_client(), uid)
        entries = seed_conversations(store, uid, count, write_conversations=False)
        sent = count_requests(store)
        response = client.get(path.format(cid=entries[0]["id"]), follow_redirects=True)
        assert response.status_code == 200
        assert "Conversation number" in response.text
        counts[count] = len(sent)
        store.client.meta.events.unregister("before-send.s3.*")
    assert counts[10] == counts[1000] <= 3


@pytest.mark.model
def test_storage_copy_moves_a_folder_into_a_bucket_and_back(make_app, tmp_path, bucket):
    folder_app = make_app()
    client = folder_app.test_client()
    cid, mid = start_conversation(client, "copy me")
    finish_reply(client, cid, mid)
    runner = folder_app.test_cli_runner()

    source = folder_app.config["STORAGE_URL"]
    result = runner.invoke(args=["storage", "copy", source, f"s3://{bucket}/copied"])
    assert result.exit_code == 0, result.output
    assert "Copied 2 objects" in result.output  # the conversation and the index

    s3_app = make_app(STORAGE_URL=f"s3://{bucket}/copied")
    uid = guest_uid(client)
    s3_client = as_guest(s3_app.test_client(), uid)
    assert "copy me" in s3_client.get(f"/c/{cid}").text

    back = f"file://{tmp_path}/back"
    assert runner.invoke(args=["storage", "copy", f"s3://{bucket}/copied", back]).exit_code == 0
    assert open_store(back).read(keys.conversation(uid, cid)) == open_store(source).read(keys.conversation(uid, cid))


def test_storage_check_passes_on_a_working_bucket(s3_app):
    result = s3_app.test_cli_runner().invoke(args=["storage", "check"])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output


def test_storage_check_explains_a_wrong_bucket(make_app, bucket):
    app = make_app(STORAGE_URL="s3://no-such-bucket-here/chatbot")
    result = app.test_cli_runner().invoke(args=["storage", "check"])
    assert result.exit_code == 1
    assert "storage check failed for s3://no-such-bucket-here/chatbot/" in result.output
    assert "NoSuchBucket" in result.output


def test_storage_init_creates_the_bucket_once(make_app, s3_server, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    bucket = bucket_name("fresh")
    app = make_app(STORAGE_URL=f"s3://{bucket}/chatbot")
    runner = app.test_cli_runner()
    assert f"Created bucket {bucket}." in runner.invoke(args=["storage", "init"]).output
    assert "already exists" in runner.invoke(args=["storage", "init"]).output
    assert runner.invoke(args=["storage", "check"]).exit_code == 0


def test_two_signups_racing_on_one_username_make_one_account(s3_app):
    store = s3_app.extensions["store"]
    results = []
    barrier = threading.Barrier(2)

    def sign_up(uid):
        barrier.wait()
        results.append(create_account(store, "racer", "password one", uid))

    threads = [threading.Thread(target=sign_up, args=(new_id(),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, True]


@pytest.mark.model
def test_outage_shows_503_and_loses_nothing_acknowledged(make_app, s3_server, monkeypatch):
    proxy = FaultProxy(s3_server.port).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    bucket = new_bucket(s3_server)
    app = make_app(STORAGE_URL=f"s3://{bucket}/chatbot")
    client = app.test_client()
    cid, mid = start_conversation(client, "before the outage")
    finish_reply(client, cid, mid)

    proxy.cut()
    page = client.get(f"/c/{cid}")
    assert page.status_code == 503
    assert "Conversations cannot be reached right now" in page.text
    assert "Traceback" not in page.text
    refused = client.post(f"/c/{cid}/messages", data={"text": "during the outage"}, headers=HTMX)
    assert refused.status_code == 503
    assert refused.headers["HX-Retarget"] == "#composer-error"
    assert "not sent" in refused.text

    proxy.restore()
    page = client.get(f"/c/{cid}")
    assert page.status_code == 200
    assert "before the outage" in page.text and 'data-status="done"' in page.text
    assert "during the outage" not in page.text


@pytest.mark.model
def test_outage_mid_stream_ends_with_an_inline_error(make_app, s3_server, monkeypatch):
    proxy = FaultProxy(s3_server.port).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    app = make_app(STORAGE_URL=f"s3://{new_bucket(s3_server)}/chatbot", MAX_TOKENS=200)
    client = app.test_client()
    cid, mid = start_conversation(client, "Count from one to fifty in words.")
    received, chunks = open_stream_at_first_token(client, cid, mid)
    opened = b"".join(received)
    assert opened.index(b"event: sidebar") < opened.index(b"event: render")  # the sidebar first, as the model starts
    proxy.cut()
    rest = b"".join(chunks).decode()
    assert 'data-status="error"' in rest
    assert "could not be saved" in rest
    assert rest.rstrip().endswith("event: done\ndata:")
    proxy.restore()
    # The user's message was acknowledged before the outage, and is still there.
    assert "Count from one to fifty in words." in client.get(f"/c/{cid}").text


def test_app_refuses_a_malformed_storage_url(tmp_path):
    with pytest.raises(ValueError, match="names no bucket"):
        create_app({**TEST_SETTINGS, "STORAGE_URL": "s3:///chatbot"})


def test_two_tabs_editing_different_branches_at_once_both_survive(s3_app):
    store = s3_app.extensions["store"]
    uid = new_id()
    conversations = Conversations(store, uid)
    conversation, first = conversations.start("Question 1", "m")
    conversations.finish_reply(conversation.id, first.id, "Answer 1", DONE)
    conversation, second = conversations.add_exchange(conversation.id, "Question 2", "m")
    conversations.finish_reply(conversation.id, second.id, "Answer 2", DONE)
    barrier = threading.Barrier(2)

    def edit(mid, text):
        # Both tabs read the same version before either writes: one compare-and-swap fails and is re-applied.
        waited = []

        def change(conversation):
            if not waited:
                waited.append(True)
                barrier.wait(timeout=10)
            return conversation.edit(mid, text, "m")

        Conversations(store, uid).update(conversation.id, change)

    tabs = [
        threading.Thread(target=edit, args=(first.parent, "Question 1, edited")),
        threading.Thread(target=edit, args=(second.parent, "Question 2, edited")),
    ]
    for tab in tabs:
        tab.start()
    for tab in tabs:
        tab.join(20)
    stored = conversations.get(conversation.id)
    contents = [message.content for message in stored.messages]
    assert "Question 1, edited" in contents and "Question 2, edited" in contents and len(contents) == 8
