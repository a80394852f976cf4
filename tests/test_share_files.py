"""A share link's files: the snapshot shows copies of the files of the path it shares, at /s/<sid>/files/<fid>,
with the owner's safe headers; a revoke (one link, a conversation's, all of them) deletes the copies; and
"Continue this chat" copies them to the visitor."""

import io
import re

import pytest

from chatbot import keys
from support import HTMX, finish_reply, new_bucket, stored_conversations
from support.files import photo_with_gps

SHARE_LINK = re.compile(r"/s/([A-Za-z0-9_-]{22})\b")
NOTES = b"# Notes\n<script>alert(1)</script>\n"


@pytest.fixture(params=["folder", pytest.param("s3", marks=pytest.mark.s3)])
def app(request, make_app, monkeypatch):
    """The app on the folder store or on moto's S3 server, with a model that sees images."""
    if request.param == "folder":
        return make_app(VISION_MODELS=["SmolLM2-135M-Instruct"])
    s3 = request.getfixturevalue("s3_server")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.url)
    return make_app(STORAGE_URL=f"s3://{new_bucket(s3)}/chatbot", VISION_MODELS=["SmolLM2-135M-Instruct"])


def shared_conversation(app, client):
    """A conversation whose first message carries a photo and a text file, and a link to it; return
    (cid, the owner's file references, sid)."""
    data = {"text": "Look", "files": [(io.BytesIO(photo_with_gps((80, 40))), "photo.jpg"), (io.BytesIO(NOTES), "n.md")]}
    response = client.post("/new", data=data, content_type="multipart/form-data", headers=HTMX)
    cid = response.headers["HX-Push-Url"].rsplit("/", 1)[1]
    (document,) = stored_conversations(app)
    finish_reply(client, cid, document["messages"][1]["id"])
    response = client.post(f"/c/{cid}/share")
    sid = SHARE_LINK.search(client.get(response.headers["Location"]).text).group(1)
    return cid, document["messages"][0]["attachments"], sid


def share_keys(app):
    return sorted(key for key in app.extensions["store"].keys(keys.SHARES))


def test_a_link_shows_copies_of_the_files_with_safe_headers(app):
    owner, visitor = app.test_client(), app.test_client()
    _, originals, sid = shared_conversation(app, owner)
    page = visitor.get(f"/s/{sid}").text
    photo, notes = re.findall(rf"/s/{sid}/files/([A-Za-z0-9_-]{{16}})", page)[::2]  # each image is linked twice
    assert f'<img src="/s/{sid}/files/{photo}"' in page and f'href="/s/{sid}/files/{notes}" download="n.md"' in page
    assert {photo, notes}.isdisjoint(file["id"] for file in originals)  # copies, not the owner's files
    assert "<script" not in page

    served = visitor.get(f"/s/{sid}/files/{notes}")
    assert served.status_code == 200 and served.data == NOTES
    assert served.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert served.headers["Content-Disposition"].startswith('attachment; filename="n.md"')
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert served.headers["Cache-Control"] == "private, no-cache"
    image = visitor.get(f"/s/{sid}/files/{photo}")
    assert image.headers["Content-Type"] == "image/jpeg" and image.headers["Content-Disposition"].startswith("inline")
    again = visitor.get(f"/s/{sid}/files/{photo}", headers={"If-None-Match": image.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


def test_only_the_snapshots_own_files_are_served_under_it(app):
    owner = app.test_client()
    cid, originals, sid = shared_conversation(app, owner)
    other_sid = SHARE_LINK.search(owner.get(owner.post(f"/c/{cid}/share").headers["Location"]).text).group(1)
    visitor = app.test_client()
    other_files = re.findall(rf"/s/{other_sid}/files/([A-Za-z0-9_-]{{16}})", visitor.get(f"/s/{other_sid}").text)
    for file in originals:
        assert visitor.get(f"/files/{file['id']}").status_code == 404  # the owner's file, to someone else
        assert visitor.get(f"/s/{sid}/files/{file['id']}").status_code == 404
    assert visitor.get(f"/s/{sid}/files/{other_files[0]}").status_code == 404  # another link's copy
    assert visitor.get(f"/s/{other_sid}/files/{other_files[0]}").status_code == 200
    assert visitor.get(f"/s/{sid}/files/../../users").status_code == 404


@pytest.mark.parametrize("how", ["revoke", "delete the conversation", "delete all my data"])
def test_a_revoke_deletes_the_copies_and_their_urls_are_404(app, how):
    owner = app.test_client()
    cid, originals, sid = shared_conversation(app, owner)
    url = re.search(rf"/s/{sid}/files/[A-Za-z0-9_-]{{16}}", app.test_client().get(f"/s/{sid}").text).group(0)
    assert len(share_keys(app)) == 5  # the snapshot, and two files, each its bytes and what it is
    if how == "revoke":
        assert owner.post(f"/s/{sid}/revoke").status_code == 303
    elif how == "delete the conversation":
        assert owner.post(f"/sidebar/{cid}/delete").status_code == 303
    else:
        assert owner.post("/account/delete-conversations").status_code in (302, 303)
    assert share_keys(app) == []
    assert app.test_client().get(url).status_code == 404
    kept = how == "revoke"  # a revoke takes the link's copies, not the owner's files
    assert (owner.get(f"/files/{originals[0]['id']}").status_code == 200) is kept


def test_continue_this_chat_copies_the_files_to_the_visitor_and_outlives_the_link(app):
    owner, visitor = app.test_client(), app.test_client()
    _, originals, sid = shared_conversation(app, owner)
    response = visitor.post(f"/s/{sid}/continue")
    assert response.status_code == 303
    copy_id = response.headers["Location"].rsplit("/", 1)[1]
    owner.post(f"/s/{sid}/revoke")

    (copy,) = [document for document in stored_conversations(app) if document["id"] == copy_id]
    copies = copy["messages"][0]["attachments"]
    assert [file["name"] for file in copies] == ["photo.jpg", "n.md"]
    assert {file["id"] for file in copies}.isdisjoint(file["id"] for file in originals)
    page = visitor.get(f"/c/{copy_id}").text
    assert f'<img src="/files/{copies[0]["id"]}"' in page
    assert visitor.get(f"/files/{copies[1]['id']}").data == NOTES
    assert owner.get(f"/files/{copies[1]['id']}").status_code == 404  # the visitor's, not the owner's
