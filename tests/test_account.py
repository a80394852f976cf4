"""A user's own data: download all of it, delete the conversations, delete the account. No JavaScript needed:
every step is a plain link or a form with its CSRF token."""

import io
import json
import re
import zipfile

import pytest

from chatbot import keys
from support import guest_uid, start_conversation, stored_conversations


@pytest.fixture
def app(make_app):
    """CSRF on, as in production: the forms must carry their tokens."""
    return make_app(WTF_CSRF_ENABLED=True)


def csrf_token(page):
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def post_form(client, path, **fields):
    """Submit the form a browser without JavaScript would: fetch the page, post its token with the fields."""
    page = client.get(path)
    assert page.status_code == 200
    return client.post(path, data={"csrf_token": csrf_token(page.get_data(as_text=True)), **fields})


def register(client, username="alice", password="correct horse battery"):
    return post_form(client, "/auth/register", username=username, password=password)


def chat(app, client, *texts):
    """Start one conversation per text, through the app as the test client (CSRF off for the htmx send)."""
    app.config["WTF_CSRF_ENABLED"] = False
    ids = [start_conversation(client, text)[0] for text in texts]
    app.extensions["replies"].wait_for_jobs(30)
    app.config["WTF_CSRF_ENABLED"] = True
    return ids


def test_account_page_is_linked_from_every_page(client):
    page = client.get("/").get_data(as_text=True)
    assert 'href="/account/"' in page
    account = client.get("/account/").get_data(as_text=True)
    assert "Download all my data" in account and "Delete all my conversations" in account
    assert "Delete my account" not in account  # a guest has no account to delete


def test_download_is_a_zip_of_every_conversation_as_json(app, client):
    first, second = chat(app, client, "First question", "Second question")
    response = client.get("/account/export.zip")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.headers["Content-Type"] == "application/zip"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="chatbot-data-')

    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    assert sorted(archive.namelist()) == sorted(
        ["index.json", f"conversations/{first}.json", f"conversations/{second}.json"]
    )
    conversation = json.loads(archive.read(f"conversations/{first}.json"))
    assert conversation["id"] == first
    assert conversation["messages"][0]["content"] == "First question"
    index = json.loads(archive.read("index.json"))
    assert {entry["id"] for entry in index["conversations"]} == {first, second}


def test_download_holds_only_the_users_own_conversations(app, client):
    chat(app, client, "Mine")
    other = app.test_client()
    chat(app, other, "Theirs")
    archive = zipfile.ZipFile(io.BytesIO(client.get("/account/export.zip").get_data()))
    contents = b"".join(archive.read(name) for name in archive.namelist())
    assert b"Mine" in contents and b"Theirs" not in contents


def test_delete_all_conversations_asks_first(app, client):
    chat(app, client, "One", "Two")
    other = app.test_client()
    chat(app, other, "Someone else's")
    uid = guest_uid(client)

    confirm = client.get("/account/delete-conversations").get_data(as_text=True)
    assert "Delete all your conversations?" in confirm and "This deletes 2 conversations" in confirm
    assert len(stored_conversations(app)) == 3  # asking deletes nothing

    response = post_form(client, "/account/delete-conversations")
    assert response.status_code == 302
    assert "Deleted 2 conversations." in client.get(response.headers["Location"]).get_data(as_text=True)
    store = app.extensions["store"]
    assert list(store.keys(keys.user(uid))) == []
    assert [document["messages"][0]["content"] for document in stored_conversations(app)] == ["Someone else's"]


def test_delete_without_a_csrf_token_is_refused(app, client):
    chat(app, client, "Keep me")
    assert client.post("/account/delete-conversations").status_code == 400
    assert len(stored_conversations(app)) == 1


def test_delete_account_needs_the_password(app, client):
    assert register(client).status_code == 302
    chat(app, client, "An account's conversation")
    store = app.extensions["store"]

    page = client.get("/account/").get_data(as_text=True)
    assert "Delete my account" in page
    wrong = post_form(client, "/account/delete", password="not the password")
    assert wrong.status_code == 400 and "Nothing was deleted" in wrong.get_data(as_text=True)
    assert store.read(keys.account("alice")) is not None and len(stored_conversations(app)) == 1

    right = post_form(client, "/account/delete", password="correct horse battery")
    assert right.status_code == 302
    assert store.read(keys.account("alice")) is None
    assert stored_conversations(app) == []
    home = client.get("/").get_data(as_text=True)
    assert "Your account and its conversations are deleted." in home
    assert "Log in" in home  # signed out

    login = post_form(client, "/auth/login", username="alice", password="correct horse battery")
    assert login.status_code == 400  # the account is gone


def test_guests_cannot_reach_the_account_deletion(client):
    response = client.get("/account/delete")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
