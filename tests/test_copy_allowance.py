"""Copies of files count toward the daily upload allowance, and a client address has an allowance of its own.

Found by an attacker's pass: share links, "Continue this chat" and forks copied files without charging anyone,
so one guest's 98 MB became 2.6 GB in 18 s from one address; and fresh guest cookies each had 100 MB a day.
"""

import io
import re

from chatbot import keys
from support import HTMX, stored_conversations

NOTES = b"n" * 1000  # a text file of 1,000 bytes: stored as it is


def send_file(client, path="/new", name="notes.txt", body=NOTES, headers=None):
    data = {"text": "Read this", "files": [(io.BytesIO(body), name)]}
    return client.post(path, data=data, content_type="multipart/form-data", headers=headers or {})


def conversation_with_a_file(app, client):
    """A conversation whose first message carries NOTES; return (cid, its reply's id)."""
    response = send_file(client)
    assert response.status_code == 303
    cid = response.headers["Location"].split("#")[0].rsplit("/", 1)[1]
    app.extensions["replies"].wait_for_jobs(10)
    document = next(document for document in stored_conversations(app) if document["id"] == cid)
    return cid, document["messages"][1]["id"]


def file_copies(app):
    """How many files (their bytes) the store holds, the users' and the links'."""
    found = list(app.extensions["store"].keys("users/")) + list(app.extensions["store"].keys(keys.SHARES))
    return sum(1 for key in found if "/files/" in key and not key.endswith(".json"))


def test_a_share_link_and_a_fork_are_charged_to_the_owner_and_refused_past_the_allowance(make_app):
    app = make_app(DAILY_UPLOAD_BYTES=2500)
    owner = app.test_client()
    cid, reply = conversation_with_a_file(app, owner)  # 1,000 of 2,500
    made = owner.post(f"/c/{cid}/share")
    assert made.status_code == 303  # 2,000
    sid = re.search(r"created=([A-Za-z0-9_-]{22})", made.headers["Location"]).group(1)
    assert file_copies(app) == 2

    refused = owner.post(f"/c/{cid}/messages/{reply}/fork")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "The fork was not made: it copies 1000 bytes of files, with 500 bytes left" in refused.text
    assert "allowance of uploads today" in refused.text
    refused = owner.post(f"/c/{cid}/share", headers=HTMX)
    assert refused.status_code == 429 and "The link was not made" in refused.text
    assert file_copies(app) == 2 and len(stored_conversations(app)) == 1  # nothing copied, nothing charged
    assert app_links(app) == [sid]  # the refused link was taken back
    assert send_file(owner, f"/c/{cid}/messages", body=b"m" * 500).status_code == 303  # 500 were left: still there


def app_links(app):
    """The share links stored (their snapshots)."""
    found = app.extensions["store"].keys(keys.SHARES)
    return [key[len(keys.SHARES) : -5] for key in found if key.endswith(".json") and "/files/" not in key]


def test_continue_this_chat_is_charged_to_the_visitor(make_app):
    app = make_app(DAILY_UPLOAD_BYTES=2500)
    owner, visitor = app.test_client(), app.test_client()
    cid, _ = conversation_with_a_file(app, owner)
    sid = re.search(r"created=([A-Za-z0-9_-]{22})", owner.post(f"/c/{cid}/share").headers["Location"]).group(1)
    assert [visitor.post(f"/s/{sid}/continue").status_code for _ in range(2)] == [303, 303]  # 2,000 of 2,500
    refused = visitor.post(f"/s/{sid}/continue")
    assert refused.status_code == 429 and "This chat was not copied: it copies" in refused.text
    assert len(stored_conversations(app)) == 3
    assert app.test_client().post(f"/s/{sid}/continue").status_code == 303  # another visitor pays their own


def test_fresh_guests_from_one_address_share_its_upload_allowance(make_app):
    app = make_app(DAILY_UPLOAD_BYTES=2500, DAILY_UPLOAD_BYTES_PER_IP=2500)
    for _ in range(2):
        assert send_file(app.test_client()).status_code == 303  # 2,000 from this address
    fresh = app.test_client()
    refused = send_file(fresh, headers=HTMX)
    assert refused.status_code == 429 and "your network&#39;s allowance of uploads" in refused.text
    assert refused.headers["HX-Retarget"] == "#composer-error"
    assert send_file(fresh, body=b"s" * 400).status_code == 303  # a refusal charges nothing: 500 were left
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "192.0.2.10"
    assert send_file(elsewhere).status_code == 303
