"""Who may act on what, through real requests: another user's ids are a 404 on every route, every state-changing
route needs its CSRF token, a password check is no guessing oracle, and a deleted account's cookie is nobody's."""

import re

from chatbot.conversations import new_id
from support import as_guest, finished_conversation, seed_conversations, stream_url

PASSWORD = "correct horse"


def sign_up(client, username="alice", password=PASSWORD):
    return client.post("/auth/register", data={"username": username, "password": password})


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
    uid = new_id()
    cid = seed_conversations(app.extensions["store"], uid, 1, messages=4)[0]["id"]
    client = as_guest(app.test_client(), uid)
    values = {"cid": cid, "mid": new_id(), "sid": "A" * 22, "fmt": "md", "provider": "huggingface"}
    posts = [rule for rule in app.url_map.iter_rules() if "POST" in rule.methods]
    assert len(posts) >= 15
    for rule in posts:
        url = re.sub(r"<(?:\w+:)?(\w+)>", lambda match: values[match.group(1)], rule.rule)
        response = client.post(url, data={"text": "x", "title": "x", "password": PASSWORD})
        assert response.status_code == 400 and "form was stale" in response.text, (url, response.status_code)


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


def test_the_session_cookie_is_renewed_once_a_day_not_on_every_answer(app):
    """Signing the cookie again on every answer cost a page view a tenth of its time: it is renewed (and its
    year-long expiry moved on) on a day's first request only, and the guest keeps their conversations."""
    client = app.test_client()
    client.get("/")
    client.get("/")  # the day's mark is set once the session is a lasting one
    with client.session_transaction() as session:
        guest = session["guest_uid"]
    assert client.get("/").headers.get("Set-Cookie") is None
    with client.session_transaction() as session:
        session["day"] -= 1  # as if the last visit was yesterday
    renewed = client.get("/")
    assert "Expires=" in renewed.headers["Set-Cookie"]
    with client.session_transaction() as session:
        assert session["guest_uid"] == guest
    assert client.get("/").headers.get("Set-Cookie") is None
