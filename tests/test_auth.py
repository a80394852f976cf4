"""Guests, accounts, and who may see what."""

from support import start_conversation, stored_conversations


def register(client, username="alice", password="correct horse"):
    return client.post("/auth/register", data={"username": username, "password": password})


def test_registering_keeps_the_guests_conversations(client):
    cid, _ = start_conversation(client, "a guest's question")
    assert register(client).status_code == 302
    page = client.get(f"/c/{cid}")
    assert page.status_code == 200 and "a guest&#39;s question" in page.text
    assert "alice" in page.text


def test_login_from_another_browser_sees_the_accounts_conversations(app):
    first = app.test_client()
    cid, _ = start_conversation(first, "synced")
    register(first)
    second = app.test_client()
    assert second.get(f"/c/{cid}").status_code == 404
    response = second.post("/auth/login", data={"username": "alice", "password": "correct horse"})
    assert response.status_code == 302
    assert second.get(f"/c/{cid}").status_code == 200


def test_wrong_password_is_refused(app):
    register(app.test_client())
    response = app.test_client().post("/auth/login", data={"username": "alice", "password": "wrong password"})
    assert response.status_code == 400
    assert "Wrong username or password." in response.text


def test_username_taken_and_bad_input_are_explained(app):
    register(app.test_client())
    taken = register(app.test_client(), password="another password")
    assert taken.status_code == 400 and "That username is taken." in taken.text
    short = register(app.test_client(), "bob", "short")
    assert short.status_code == 400 and "at least 8 characters" in short.text
    bad = register(app.test_client(), "Bad Name!", "long enough pw")
    assert bad.status_code == 400 and "Usernames are 3 to 32 characters" in bad.text


def test_logout_makes_a_new_guest(client):
    register(client)
    cid, _ = start_conversation(client, "mine")
    response = client.post("/auth/logout")
    assert response.status_code == 302
    assert client.get(f"/c/{cid}").status_code == 404


def test_login_redirects_only_to_local_paths(app):
    register(app.test_client())
    response = app.test_client().post(
        "/auth/login?next=https://evil.example/", data={"username": "alice", "password": "correct horse"}
    )
    assert response.headers["Location"] == "/"


def test_without_guests_visitors_must_log_in(make_app):
    app = make_app(ALLOW_GUESTS=False)
    client = app.test_client()
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/auth/login")
    assert client.post("/new", data={"text": "hi"}).status_code == 302
    assert stored_conversations(app) == []
    register(client)
    assert client.get("/").status_code == 200
