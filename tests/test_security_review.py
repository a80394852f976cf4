"""A security review, as an attacker would try it: one finding a test, through real requests.

Each finding was a failing test first; all of them are fixed now.
"""

import re
import threading

import pytest

from chatbot import keys
from chatbot.conversations import Conversations, new_id
from support import HTMX, BlockingLLM, as_guest, finished_conversation, guest_uid, seed_conversations, stream_url

PASSWORD = "correct horse"


def sign_up(client, username="alice", password=PASSWORD):
    return client.post("/auth/register", data={"username": username, "password": password})


def seeded_guest(app, conversations=1, messages=4):
    """A guest client with seeded conversations (no model runs); returns (client, entries newest first)."""
    uid = new_id()
    entries = seed_conversations(app.extensions["store"], uid, conversations, messages=messages)
    return as_guest(app.test_client(), uid), entries


def share_id(app, client, cid):
    client.post(f"/c/{cid}/share")
    links = app.extensions["store"].read(keys.share_list(guest_uid(client)))[0].decode()
    return re.search(r'"id": ?"([A-Za-z0-9_-]{22})"', links).group(1)


# What one visitor can make the server store or read ------------------------------------------------


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


# Passwords and sessions ---------------------------------------------------------------------------


def test_wrong_passwords_on_account_delete_meet_the_log_in_back_off(make_app):
    """The password check on "Delete my account" must not be a guessing oracle (nor free CPU) without limit."""
    app = make_app(LOGIN_FREE_FAILURES=2)
    client = app.test_client()
    sign_up(client, "bobby")
    statuses = [client.post("/account/delete", data={"password": f"guess-{n}"}).status_code for n in range(4)]
    assert statuses[:2] == [400, 400] and 429 in statuses[2:]
    # The back-off is the log-in's: guessing here or there counts the same.
    refused = app.test_client().post("/auth/login", data={"username": "bobby", "password": PASSWORD})
    assert refused.status_code == 429


def test_a_deleted_accounts_session_does_not_sign_in_whoever_takes_its_name(app):
    """An old cookie of a deleted account must not read as the new account of the same name."""
    alice = app.test_client()
    sign_up(alice, "alice")
    old_cookie = alice.get_cookie("session").value
    assert alice.post("/account/delete", data={"password": PASSWORD}).status_code == 302
    newcomer = app.test_client()
    assert sign_up(newcomer, "alice", "another password").status_code == 302

    stale = app.test_client()
    stale.set_cookie("session", old_cookie)
    assert "Log out everywhere" not in stale.get("/account/").text  # a guest, not "alice"
    stale.post("/auth/logout-everywhere")
    assert "Log out everywhere" in newcomer.get("/account/").text  # the newcomer is still signed in


# Found in chat.py and live/: reported to the lead, not fixed here ------------------------------------


@pytest.mark.parametrize("after", ["²", "9" * 5000])
def test_a_malformed_resume_id_is_not_a_server_error(app, after):
    client = app.test_client()
    cid, mid = finished_conversation(client)
    app.testing = False  # answer as in production: an exception is a 500 page
    assert client.get(f"{stream_url(cid, mid)}?after={after}").status_code == 200


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


# Checked and sound ---------------------------------------------------------------------------------


def test_another_users_ids_are_404_on_every_route(app):
    """Knowing a conversation's and a reply's ids gives another user nothing: read, stream, stop, retry, edit,
    export, share, rename, delete are all a 404, and the owner's conversation is unchanged."""
    owner = app.test_client()
    cid, mid = finished_conversation(owner, "my secret")
    before = owner.get(f"/c/{cid}/export.json").text
    user_mid = re.search(r'"id": "([^"]+)",\s*"role": "user"', before).group(1)
    other = app.test_client()
    requests = [
        ("get", f"/c/{cid}"),
        ("get", stream_url(cid, mid)),
        ("get", f"{stream_url(cid, mid)}?after=0"),
        ("post", f"/c/{cid}/messages"),
        ("post", f"/c/{cid}/messages/{mid}/stop"),
        ("post", f"/c/{cid}/messages/{mid}/regenerate"),
        ("get", f"/c/{cid}/messages/{user_mid}/edit"),
        ("post", f"/c/{cid}/messages/{user_mid}/edit"),
        ("get", f"/c/{cid}/export.md"),
        ("get", f"/c/{cid}/share"),
        ("post", f"/c/{cid}/share"),
        ("get", f"/sidebar/{cid}"),
        ("post", f"/sidebar/{cid}/rename"),
        ("post", f"/sidebar/{cid}/delete"),
    ]
    for method, url in requests:
        response = getattr(other, method)(url, data={"text": "hijack", "title": "hijacked"})
        assert response.status_code == 404, (method, url, response.status_code)
        assert "my secret" not in response.text
    assert owner.get(f"/c/{cid}/export.json").text == before


def test_every_state_changing_route_needs_a_csrf_token(make_app):
    """Every POST route, the chat's, sharing's, the account's and log-out's alike, refuses a request without
    the token (probes excepted: they post nothing)."""
    app = make_app(WTF_CSRF_ENABLED=True)
    client, entries = seeded_guest(app)
    cid = entries[0]["id"]
    values = {"cid": cid, "mid": new_id(), "sid": "A" * 22, "fmt": "md", "provider": "huggingface"}
    posts = [rule for rule in app.url_map.iter_rules() if "POST" in rule.methods]
    assert len(posts) >= 15
    for rule in posts:
        url = re.sub(r"<(?:\w+:)?(\w+)>", lambda match: values[match.group(1)], rule.rule)
        response = client.post(url, data={"text": "x", "title": "x", "password": PASSWORD})
        assert response.status_code == 400 and "form was stale" in response.text, (url, response.status_code)


def test_a_share_page_shows_its_snapshot_and_no_ids_or_scripts(app):
    owner, entries = seeded_guest(app, conversations=2)
    cid = entries[0]["id"]
    sid = share_id(app, owner, cid)
    page = app.test_client().get(f"/s/{sid}")
    assert page.status_code == 200
    assert "<script" not in page.text and guest_uid(owner) not in page.text
    assert cid not in page.text and entries[1]["id"] not in page.text


def test_model_text_cannot_forge_or_end_an_sse_event():
    from chatbot.events import frame

    forged = frame("render", "a\r\n\r\nevent: final\ndata: <b>x</b>\r\rid: 9\n\n")
    events = forged.split("\n\n")
    assert events[1:] == [""]  # one event, however the text breaks its lines
    assert all(line.startswith(("event: render", "data: ")) for line in events[0].split("\n"))
    assert "\r" not in forged
