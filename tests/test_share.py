"""Sharing a conversation: a read-only snapshot at /s/<id> that shows that snapshot and nothing else."""

import re
import threading
from types import SimpleNamespace

import pytest

from chatbot import keys
from chatbot.conversations import Conversations, new_id
from chatbot.shares import Shares
from chatbot.userdata import delete_user_data
from support import as_guest, new_bucket, seed_conversations, stored_conversations

SHARE_LINK = re.compile(r"/s/([A-Za-z0-9_-]{22})\b")


@pytest.fixture
def owner(app):
    """A guest with two conversations (seeded: no model runs); returns (client, uid, [entries newest first])."""
    uid = new_id()
    entries = seed_conversations(app.extensions["store"], uid, 2, messages=4)
    return as_guest(app.test_client(), uid), uid, entries


def share(client, cid):
    """Make a link to conversation cid; return its share id."""
    response = client.post(f"/c/{cid}/share")
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).text
    return SHARE_LINK.search(page).group(1)


def test_a_link_shows_the_snapshot_read_only_to_anyone_and_nothing_else(app, owner):
    client, uid, entries = owner
    shared, other = entries[1]["id"], entries[0]["id"]  # conversation number 0 is shared; number 1 is not
    sid = share(client, shared)
    assert sid != shared

    page = app.test_client().get(f"/s/{sid}")  # a visitor with no session at all
    assert page.status_code == 200
    html = page.text
    assert "message 0 of conversation 0" in html and "message 3 of conversation 0" in html
    assert "Conversation number 0" in html
    # Nothing else: not the other conversation, not the ids behind the link, no sidebar, composer or script.
    assert "conversation 1" not in html and "Conversation number 1" not in html
    assert shared not in html and other not in html and uid not in html
    assert 'id="sidebar"' not in html and 'id="composer"' not in html and "<script" not in html
    assert '<meta name="robots" content="noindex">' in html
    assert page.headers["X-Robots-Tag"] == "noindex"
    assert "Continue this chat" in html


def test_the_snapshot_never_changes_when_the_conversation_does(app, owner):
    client, _, entries = owner
    cid = entries[1]["id"]
    sid = share(client, cid)
    client.post(f"/sidebar/{cid}/rename", data={"title": "Renamed later"})
    client.post(f"/c/{cid}/messages", data={"text": "A message after sharing"})
    html = app.test_client().get(f"/s/{sid}").text
    assert "Conversation number 0" in html and "Renamed later" not in html
    assert "A message after sharing" not in html


def test_sharing_someone_elses_conversation_is_a_404(app, owner):
    _, _, entries = owner
    stranger = app.test_client()
    for cid in (entries[0]["id"], "not-an-id"):
        assert stranger.get(f"/c/{cid}/share").status_code == 404
        assert stranger.post(f"/c/{cid}/share").status_code == 404
    assert not any(key.startswith(keys.SHARES) for key in app.extensions["store"].keys(""))


def test_only_the_owner_revokes_and_a_revoked_link_is_a_404(app, owner):
    client, _, entries = owner
    cid = entries[0]["id"]
    sid = share(client, cid)
    stranger = app.test_client()
    assert stranger.post(f"/s/{sid}/revoke").status_code == 404
    assert stranger.get(f"/s/{sid}").status_code == 200

    assert sid in client.get(f"/c/{cid}/share").text and sid in client.get("/shares").text
    response = client.post(f"/s/{sid}/revoke", data={"back": "conversation"})
    assert response.status_code == 303 and response.headers["Location"] == f"/c/{cid}/share"
    assert stranger.get(f"/s/{sid}").status_code == 404
    assert sid not in client.get("/shares").text
    assert client.post(f"/s/{sid}/revoke").status_code == 404  # once


@pytest.mark.parametrize("sid", ["A" * 22, "short", "../../users/x", "A" * 16])
def test_unknown_or_malformed_links_are_404(client, sid):
    assert client.get(f"/s/{sid}").status_code == 404


def test_a_conversation_id_is_not_a_share_link(app, owner):
    client, _, entries = owner
    share(client, entries[0]["id"])
    assert app.test_client().get(f"/s/{entries[0]['id']}").status_code == 404


def test_continue_this_chat_copies_the_snapshot_into_the_visitors_own_chats(app, owner):
    client, _, entries = owner
    sid = share(client, entries[1]["id"])
    visitor = app.test_client()
    response = visitor.post(f"/s/{sid}/continue")
    assert response.status_code == 303
    copy_id = response.headers["Location"].rsplit("/", 1)[1]
    assert copy_id not in (entries[0]["id"], entries[1]["id"])
    page = visitor.get(f"/c/{copy_id}").text
    assert "message 3 of conversation 0" in page
    assert 'id="composer"' in page  # the visitor's own conversation: they can go on
    copies = [document for document in stored_conversations(app) if document["id"] == copy_id]
    assert [message["content"] for message in copies[0]["messages"]] == [
        f"message {index} of conversation 0" for index in range(4)
    ]
    # The original is untouched, and still not the visitor's.
    assert visitor.get(f"/c/{entries[1]['id']}").status_code == 404


def test_continue_needs_the_forms_csrf_token(make_app):
    app = make_app(WTF_CSRF_ENABLED=True)
    uid = new_id()
    entries = seed_conversations(app.extensions["store"], uid, 1, messages=2)
    client = as_guest(app.test_client(), uid)
    page = client.get(f"/c/{entries[0]['id']}/share").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post(f"/c/{entries[0]['id']}/share", data={"csrf_token": token})
    sid = SHARE_LINK.search(client.get(response.headers["Location"]).text).group(1)

    visitor = app.test_client()
    assert visitor.post(f"/s/{sid}/continue").status_code == 400
    token = re.search(r'name="csrf_token" value="([^"]+)"', visitor.get(f"/s/{sid}").text).group(1)
    assert visitor.post(f"/s/{sid}/continue", data={"csrf_token": token}).status_code == 303


def test_deleting_the_conversation_revokes_its_links(app, owner):
    client, _, entries = owner
    deleted, kept = entries[0]["id"], entries[1]["id"]
    gone, staying = share(client, deleted), share(client, kept)
    client.post(f"/sidebar/{deleted}/delete")
    visitor = app.test_client()
    assert visitor.get(f"/s/{gone}").status_code == 404
    assert visitor.get(f"/s/{staying}").status_code == 200
    assert gone not in client.get("/shares").text


def test_deleting_all_your_conversations_revokes_every_link(app, owner):
    client, _, entries = owner
    links = [share(client, entry["id"]) for entry in entries]
    client.post("/account/delete-conversations")
    assert [app.test_client().get(f"/s/{sid}").status_code for sid in links] == [404, 404]
    assert not any(key.startswith(keys.SHARES) for key in app.extensions["store"].keys(""))


# Making a link while the conversation is deleted or the link revoked ------------------------------------


class InterleavedStore:
    """The real store, running another request's steps once, just before this one's first write or delete
    of a key under a prefix: a race, in a chosen order, every time."""

    def __init__(self, store):
        self.store, self._steps = store, []

    def before(self, operation, prefix, step):
        """Run step() once, before the first `operation` ("write" or "delete") of a key under prefix."""
        self._steps.append((operation, prefix, step))

    def _run_steps(self, operation, key):
        for planned in list(self._steps):
            if planned[0] == operation and key.startswith(planned[1]):
                self._steps.remove(planned)
                planned[2]()

    def read(self, key):
        """Read from the real store."""
        return self.store.read(key)

    def write(self, key, data, **conditions):
        """Run the steps planned before this write, then write to the real store."""
        self._run_steps("write", key)
        return self.store.write(key, data, **conditions)

    def delete(self, key):
        """Run the steps planned before this delete, then delete from the real store."""
        self._run_steps("delete", key)
        return self.store.delete(key)

    def keys(self, prefix=""):
        """The real store's keys."""
        return self.store.keys(prefix)


@pytest.fixture(params=["folder", pytest.param("s3", marks=pytest.mark.s3)])
def race(request, make_app, monkeypatch):
    """A guest's conversation on the folder store or S3, and the app's store made an InterleavedStore."""
    if request.param == "folder":
        app = make_app()
    else:
        s3 = request.getfixturevalue("s3_server")
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3.url)
        app = make_app(STORAGE_URL=f"s3://{new_bucket(s3)}/chatbot")
    store, uid = app.extensions["store"], new_id()
    [entry] = seed_conversations(store, uid, 1, messages=2)
    interleaved = app.extensions["store"] = InterleavedStore(store)
    client = as_guest(app.test_client(), uid)
    return SimpleNamespace(app=app, client=client, store=store, interleaved=interleaved, uid=uid, cid=entry["id"])


def delete_conversation(race):
    """Another request deletes the conversation, as the sidebar's delete does."""
    Conversations(race.store, race.uid).delete(race.cid)
    Shares(race.store, race.uid).revoke_conversation(race.cid)


def readable_links(race):
    """The share ids anyone can still read: every snapshot stored."""
    return [key[len(keys.SHARES) : -len(".json")] for key in race.store.keys(keys.SHARES)]


def test_a_conversation_deleted_between_the_list_and_the_snapshot_leaves_no_readable_link(race):
    race.interleaved.before("write", keys.SHARES, lambda: delete_conversation(race))
    assert race.client.post(f"/c/{race.cid}/share").status_code == 404
    assert readable_links(race) == [] and Shares(race.store, race.uid).links() == []


def test_a_conversation_deleted_before_its_link_is_listed_leaves_no_readable_link(race):
    race.interleaved.before("write", keys.share_list(race.uid), lambda: delete_conversation(race))
    assert race.client.post(f"/c/{race.cid}/share").status_code == 404
    assert readable_links(race) == [] and Shares(race.store, race.uid).links() == []


def test_a_link_revoked_before_its_snapshot_is_written_stays_revoked(race):
    def revoke():  # the owner, in another tab, revokes the link as soon as it is listed
        [listed] = Shares(race.store, race.uid).links()
        Shares(race.store, race.uid).revoke(listed["id"])

    race.interleaved.before("write", keys.SHARES, revoke)
    assert race.client.post(f"/c/{race.cid}/share").status_code == 404
    assert readable_links(race) == [] and Shares(race.store, race.uid).links() == []


def test_a_revoke_that_unlists_after_the_snapshot_is_written_still_deletes_it(race):
    """The revoke deletes the (not yet written) snapshot, then waits; the link is made; then the revoke unlists."""
    revoking, made = InterleavedStore(race.store), threading.Event()
    waiting = threading.Event()
    revoking.before("write", keys.share_list(race.uid), lambda: (waiting.set(), made.wait(30)))
    revoker = []

    def revoke():
        [listed] = Shares(race.store, race.uid).links()
        revoker.append(threading.Thread(target=Shares(revoking, race.uid).revoke, args=(listed["id"],)))
        revoker[0].start()
        assert waiting.wait(30), "the revoke did not reach its list write"

    race.interleaved.before("write", keys.SHARES, revoke)
    assert race.client.post(f"/c/{race.cid}/share").status_code == 303  # made, while the revoke waits
    made.set()
    revoker[0].join(30)
    assert readable_links(race) == [] and Shares(race.store, race.uid).links() == []


def test_a_link_made_while_all_data_is_deleted_is_deleted_too(race):
    """Delete all my data runs; just before it deletes the first conversation, a link to it is made."""
    deleting = InterleavedStore(race.store)
    made = []
    deleting.before(
        "delete", keys.conversations(race.uid), lambda: made.append(race.client.post(f"/c/{race.cid}/share"))
    )
    delete_user_data(deleting, race.uid)
    assert made[0].status_code == 303  # made before any of it was deleted, and revoked with the rest
    assert readable_links(race) == [] and Shares(race.store, race.uid).links() == []
