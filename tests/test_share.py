"""Sharing a conversation: a read-only snapshot at /s/<id> that shows that snapshot and nothing else."""

import re

import pytest

from chatbot.conversations import new_id
from support import as_guest, seed_conversations, stored_conversations

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
    assert not any(key.startswith("shares/") for key in app.extensions["store"].keys(""))


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
    assert not any(key.startswith("shares/") for key in app.extensions["store"].keys(""))
