"""Limits on what one visitor can make the server store, read or run, through real requests: share links and
the copies "Continue this chat" makes, zip downloads, renames, and replies generated at once."""

import re
import threading

from chatbot import keys
from chatbot.conversations import Conversations, new_id
from support import HTMX, BlockingLLM, as_guest, guest_uid, seed_conversations


def seeded_guest(app, conversations=1, messages=4):
    """A guest client with seeded conversations (no model runs); returns (client, entries newest first)."""
    uid = new_id()
    entries = seed_conversations(app.extensions["store"], uid, conversations, messages=messages)
    return as_guest(app.test_client(), uid), entries


def share_id(app, client, cid):
    client.post(f"/c/{cid}/share")
    links = app.extensions["store"].read(keys.share_list(guest_uid(client)))[0].decode()
    return re.search(r'"id": ?"([A-Za-z0-9_-]{22})"', links).group(1)


def test_share_links_are_rate_limited(make_app):
    """Each link copies the whole conversation into storage: a script must not make thousands."""
    app = make_app(COPY_LIMIT="3 per minute")
    client, entries = seeded_guest(app)
    statuses = [client.post(f"/c/{entries[0]['id']}/share").status_code for _ in range(4)]
    assert statuses == [303, 303, 303, 429]


def test_share_links_per_user_are_capped(make_app, monkeypatch):
    """However slowly they are made, one user's links (each a stored copy) stop at a cap."""
    monkeypatch.setattr("chatbot.shares.MAX_LINKS", 2)
    app = make_app()
    client, entries = seeded_guest(app)
    statuses = [client.post(f"/c/{entries[0]['id']}/share").status_code for _ in range(3)]
    assert statuses == [303, 303, 403]
    assert "links" in client.post(f"/c/{entries[0]['id']}/share").text


def test_continue_this_chat_is_limited_per_ip_even_for_fresh_guests(make_app):
    """Each copy is a new stored conversation; a fresh cookie each time must still meet the per-IP budget."""
    app = make_app(COPY_LIMIT="100 per minute", COPY_LIMIT_PER_IP="3 per minute")
    owner, entries = seeded_guest(app)
    sid = share_id(app, owner, entries[0]["id"])
    statuses = [app.test_client().post(f"/s/{sid}/continue").status_code for _ in range(3)]
    assert statuses == [303, 303, 429]  # the owner's share creation counted from this address too


def test_account_zip_downloads_are_rate_limited(make_app):
    """A zip reads every stored conversation: downloads in a loop must stop."""
    client = make_app(EXPORT_LIMIT="2 per hour").test_client()
    statuses = [client.get("/account/export.zip").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_renames_are_rate_limited(make_app):
    """Each rename writes the conversation and the index: a loop must not write without end."""
    app = make_app(RENAME_LIMIT="2 per minute")
    client, entries = seeded_guest(app)
    cid = entries[0]["id"]
    statuses = [client.post(f"/sidebar/{cid}/rename", data={"title": f"t{n}"}).status_code for n in range(3)]
    assert statuses == [303, 303, 429]


def test_parallel_sends_cannot_run_more_replies_than_allowed(make_app, monkeypatch):
    app = make_app(MAX_REPLIES_AT_ONCE=2)
    model = app.extensions["llm"] = BlockingLLM()
    # Storage as slow as S3's round trips, so the parallel requests overlap as they do in production.
    original = Conversations.start
    monkeypatch.setattr(Conversations, "start", lambda self, *a: (threading.Event().wait(0.2), original(self, *a))[1])
    first = app.test_client()
    first.get("/new")
    uid = guest_uid(first)
    clients = [as_guest(app.test_client(), uid) for _ in range(6)]
    barrier, statuses = threading.Barrier(len(clients)), []

    def send(client):
        barrier.wait()
        statuses.append(client.post("/new", data={"text": "hi"}, headers=HTMX).status_code)

    threads = [threading.Thread(target=send, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert statuses.count(200) <= 2, f"{statuses.count(200)} replies generated at once"
    finally:
        model.release.set()
