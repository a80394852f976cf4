"""The operator's commands (`flask users|guests|usage|storage|release-check`) on the folder store and on S3."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from chatbot import keys, userdata
from chatbot.accounts import create_account
from chatbot.conversations import Conversations, encode_index, new_id
from chatbot.storage.local import LocalStore
from support import new_bucket

NOW = datetime.now(timezone.utc)


@pytest.fixture(params=["folder", pytest.param("s3", marks=pytest.mark.s3)])
def store_app(request, make_app, monkeypatch):
    """The app over the folder store, then over a fresh bucket on moto's S3 server."""
    if request.param == "folder":
        return make_app()
    s3_server = request.getfixturevalue("s3_server")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    return make_app(STORAGE_URL=f"s3://{new_bucket(s3_server)}/chatbot")


def stamp(days_ago, hours=0):
    """An ISO timestamp days_ago days (and hours) before now."""
    return (NOW - timedelta(days=days_ago, hours=hours)).isoformat(timespec="milliseconds")


def write_user(store, uid, conversations):
    """Store conversations for uid: each a list of (role, days_ago) messages; return their ids."""
    entries = []
    for messages in conversations:
        cid = new_id()
        created = [stamp(days) for _, days in messages]
        document = {
            "id": cid,
            "title": "A title",
            "model": "SmolLM2-135M-Instruct",
            "created_at": created[0],
            "updated_at": max(created),
            "messages": [
                {"id": new_id(), "role": role, "content": f"{role} text", "created_at": at}
                for (role, _), at in zip(messages, created, strict=True)
            ],
        }
        store.write(keys.conversation(uid, cid), json.dumps(document).encode())
        entries.append({"id": cid, "title": "A title", "updated_at": max(created), "model": document["model"]})
    entries.sort(key=lambda entry: entry["updated_at"], reverse=True)
    store.write(keys.index(uid), encode_index(entries))
    return [entry["id"] for entry in entries]


def user_keys(store, uid):
    return sorted(store.keys(keys.user(uid)))


def test_users_list_shows_accounts_and_their_conversations(store_app):
    store = store_app.extensions["store"]
    alice, bob = new_id(), new_id()
    create_account(store, "alice", "password-1", alice)
    create_account(store, "bob", "password-2", bob)
    write_user(store, alice, [[("user", 0), ("assistant", 0)], [("user", 1)]])

    result = store_app.test_cli_runner().invoke(args=["users", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("alice") and lines[0].endswith("2 conversations")
    assert lines[1].startswith("bob") and lines[1].endswith("0 conversations")
    assert lines[-1] == "2 accounts."
    assert "password" not in result.output


def test_users_delete_asks_then_removes_the_account_and_its_conversations(store_app):
    store = store_app.extensions["store"]
    alice, bob = new_id(), new_id()
    create_account(store, "alice", "password-1", alice)
    create_account(store, "bob", "password-2", bob)
    write_user(store, alice, [[("user", 0)], [("user", 1)]])
    write_user(store, bob, [[("user", 0)]])
    runner = store_app.test_cli_runner()

    refused = runner.invoke(args=["users", "delete", "alice"], input="n\n")
    assert refused.exit_code == 1 and "Delete the account 'alice' and its 2 conversations?" in refused.output
    assert store.read(keys.account("alice")) is not None and len(user_keys(store, alice)) == 3

    accepted = runner.invoke(args=["users", "delete", "alice"], input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "Deleted the account 'alice' and 2 conversations." in accepted.output
    assert store.read(keys.account("alice")) is None and user_keys(store, alice) == []
    assert store.read(keys.account("bob")) is not None and len(user_keys(store, bob)) == 2  # bob untouched


def test_users_delete_with_yes_and_an_unknown_name(store_app):
    store = store_app.extensions["store"]
    create_account(store, "carol", "password-3", new_id())
    runner = store_app.test_cli_runner()
    assert runner.invoke(args=["users", "delete", "carol", "--yes"]).exit_code == 0
    assert store.read(keys.account("carol")) is None
    missing = runner.invoke(args=["users", "delete", "nobody", "--yes"])
    assert missing.exit_code == 1 and "no account named 'nobody'" in missing.output


def test_guests_purge_is_a_dry_run_until_told(store_app):
    store = store_app.extensions["store"]
    old_guest, recent_guest, old_account = new_id(), new_id(), new_id()
    write_user(store, old_guest, [[("user", 45), ("assistant", 45)], [("user", 40)]])
    write_user(store, recent_guest, [[("user", 60)], [("user", 2)]])  # the newest conversation counts
    write_user(store, old_account, [[("user", 90)]])
    create_account(store, "dave", "password-4", old_account)  # an account's data is never a guest's
    runner = store_app.test_cli_runner()

    dry = runner.invoke(args=["guests", "purge", "--older-than", "30d"])
    assert dry.exit_code == 0, dry.output
    assert f"would delete guest {old_guest}: 2 conversations" in dry.output
    assert recent_guest not in dry.output and old_account not in dry.output
    assert "Dry run: 1 guests older than 30d would be deleted." in dry.output
    assert len(user_keys(store, old_guest)) == 3  # nothing deleted

    done = runner.invoke(args=["guests", "purge", "--older-than", "30d", "--yes"])
    assert done.exit_code == 0, done.output
    assert "Deleted 1 guests." in done.output
    assert user_keys(store, old_guest) == []
    assert len(user_keys(store, recent_guest)) == 3 and len(user_keys(store, old_account)) == 2


def test_guests_purge_rejects_a_bad_age(store_app):
    result = store_app.test_cli_runner().invoke(args=["guests", "purge", "--older-than", "soon"])
    assert result.exit_code == 2 and "is not an age like 30d" in result.output


def test_usage_counts_messages_and_replies_per_day(store_app):
    store = store_app.extensions["store"]
    first, second = new_id(), new_id()
    write_user(
        store, first, [[("user", 0), ("assistant", 0), ("user", 0), ("assistant", 0)], [("user", 2), ("assistant", 2)]]
    )
    write_user(store, second, [[("user", 20), ("assistant", 20), ("user", 0), ("assistant", 0)]])

    result = store_app.test_cli_runner().invoke(args=["usage", "--days", "7"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()[1:]}
    today, two_days_ago = NOW.date().isoformat(), (NOW - timedelta(days=2)).date().isoformat()
    assert rows[today] == ["3", "3", "2"]  # messages, replies, users
    assert rows[two_days_ago] == ["1", "1", "1"]
    assert rows["total"] == ["4", "4"]  # the message 20 days ago is outside the window
    assert len(rows) == 8


def test_release_check_passes_on_a_working_store(store_app, local_llm):
    store_app.extensions["llm"] = local_llm  # the real backend's check; no reply is generated
    result = store_app.test_cli_runner().invoke(args=["release-check"])
    assert result.exit_code == 0, result.output
    assert "Release check passed." in result.output


@pytest.mark.s3
def test_release_check_fails_on_a_wrong_bucket_saying_what_to_fix(make_app, s3_server, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    app = make_app(STORAGE_URL="s3://no-such-bucket-here/chatbot")
    result = app.test_cli_runner().invoke(args=["release-check"])
    assert result.exit_code == 1
    assert "the bucket does not exist: fix STORAGE_URL, or create it with `flask storage init`" in result.output


@pytest.mark.s3
def test_release_check_fails_without_credentials_saying_what_to_fix(make_app, s3_server, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    app = make_app(STORAGE_URL=f"s3://{new_bucket(s3_server)}/chatbot")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.setenv(name, "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = app.test_cli_runner().invoke(args=["release-check"])
    assert result.exit_code == 1
    assert "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in result.output


def test_storage_migrate_rewrites_old_documents_once_and_says_what_it_did(store_app):
    store = store_app.extensions["store"]
    first, second = new_id(), new_id()
    old = write_user(store, first, [[("user", 1), ("assistant", 1), ("user", 0), ("assistant", 0)], [("user", 3)]])
    old += write_user(store, second, [[("user", 2), ("assistant", 2)]])
    current = Conversations(store, second).start_copy("Already current", "m", [{"role": "user", "content": "Hi"}])
    store.write(keys.conversation(second, new_id()), b"{not json")
    before = {cid: read_document(store, uid, cid) for uid, cid in owned(store, old)}
    indexes = {uid: store.read(keys.index(uid))[0] for uid in (first, second)}

    result = store_app.test_cli_runner().invoke(args=["storage", "migrate"])
    assert result.exit_code == 1
    assert result.output.splitlines()[-2] == "3 rewritten, 1 already current, 1 failed."
    assert "Failed: users/" in result.output and "JSONDecodeError" in result.output
    for uid, cid in owned(store, old):
        document, was = read_document(store, uid, cid), before[cid]
        assert document["version"] == 2 and document["current"] == was["messages"][-1]["id"]
        assert [message["parent"] for message in document["messages"]] == [None] + [
            message["id"] for message in was["messages"][:-1]
        ]
        assert [message["content"] for message in document["messages"]] == [m["content"] for m in was["messages"]]
        assert document["updated_at"] == was["updated_at"]  # the sidebar's order stays
    assert {uid: store.read(keys.index(uid))[0] for uid in (first, second)} == indexes
    assert Conversations(store, second).get(current.id).title == "Already current"

    again = store_app.test_cli_runner().invoke(args=["storage", "migrate"])
    assert again.output.splitlines()[-2] == "0 rewritten, 4 already current, 1 failed."


def test_storage_migrate_never_overwrites_a_write_made_meanwhile(tmp_path):
    """Every rewrite is a compare-and-swap: a reply saved between the migration's read and its write is kept."""
    store = RacingStore(str(tmp_path))
    uid = new_id()
    [cid] = write_user(store, uid, [[("user", 0), ("assistant", 0)]])
    key = keys.conversation(uid, cid)

    def save_a_reply_meanwhile():
        document = json.loads(store.read(key)[0])
        document["messages"][-1]["content"] = "saved meanwhile"
        LocalStore.write(store, key, json.dumps(document).encode())

    store.before_next_write = save_a_reply_meanwhile
    assert userdata.migrate_conversations(store) == (1, 0, [])
    document = json.loads(store.read(key)[0])
    assert document["version"] == 2 and document["messages"][-1]["content"] == "saved meanwhile"


class RacingStore(LocalStore):
    """The folder store, where another writer changes a document just before the next write (a race, made
    to happen every time)."""

    before_next_write = None

    def write(self, key, data, **condition):
        """Run before_next_write once, then write as the folder store does."""
        racer, self.before_next_write = self.before_next_write, None
        if racer:
            racer()
        return super().write(key, data, **condition)


def owned(store, cids):
    """(uid, cid) of each conversation id, found in the store."""
    found = {key.rsplit("/", 1)[1][: -len(".json")]: key.split("/")[1] for key in userdata.all_conversation_keys(store)}
    return [(found[cid], cid) for cid in cids]


def read_document(store, uid, cid):
    return json.loads(store.read(keys.conversation(uid, cid))[0])
