"""Share and export take the branch the page shows (its leaf, named in the header's links), not the stored
current path: a search result's ?m= and another tab may show another branch than the one stored."""

import html
import json
import re

import pytest

from chatbot import keys
from support import HTMX, FakeLLM, finished_conversation, stored_conversations

CAT = "What is a good name for a cat?"
PIN = "My bank PIN is 4821, is that safe?"


@pytest.fixture
def app(make_app):
    """Replies come from a FAKE model: these tests are about which branch is shared, not what is said."""
    app = make_app()
    app.extensions["llm"] = FakeLLM()
    return app


def edited(client, app):
    """A conversation whose one question was edited from CAT to PIN (the stored path: PIN); return (cid, the
    question's versions, their replies)."""
    cid, cat_reply = finished_conversation(client, CAT)
    cat = stored_conversations(app)[0]["messages"][0]["id"]
    assert client.post(f"/c/{cid}/messages/{cat}/edit", data={"text": PIN}).status_code == 303
    messages = stored_conversations(app)[0]["messages"]
    return cid, (cat, messages[2]["id"]), (cat_reply, messages[3]["id"])


def link(page, text):
    """The href of the header's menu item named text."""
    found = re.search(r'<a href="([^"]+)"[^>]*>' + re.escape(text) + "<", page)
    return html.unescape(found.group(1))


def share_from(client, page):
    """Follow the page's Share item, create a link with its form, and return the snapshot's text."""
    share_page = client.get(link(page, "Share"))
    assert share_page.status_code == 200
    form = {
        name: value for name, value in re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', share_page.text)
    }
    response = client.post(
        re.search(r'<form method="post" action="([^"]+/share)"', share_page.text).group(1), data=form
    )
    assert response.status_code == 303
    sid = re.search(r"/s/([A-Za-z0-9_-]{22})", client.get(response.headers["Location"]).text).group(1)
    return json.dumps(json.loads(client.application.extensions["store"].read(keys.share(sid))[0]))


def test_a_search_results_branch_is_what_share_and_export_take(client, app):
    cid, (cat, _), (cat_reply, _) = edited(client, app)
    results = client.get("/sidebar/search?q=cat", headers=HTMX).text
    assert f"/c/{cid}?m={cat}" in results
    page = client.get(f"/c/{cid}?m={cat}").text  # the search result: the cat question, not the stored PIN one
    assert CAT in page and PIN not in page
    share_page = client.get(link(page, "Share")).text
    assert "the last you wrote being “What is a good name for a cat?”" in share_page  # it says what it will show
    snapshot = share_from(client, page)
    assert CAT in snapshot and "4821" not in snapshot
    markdown = client.get(link(page, "Export Markdown")).text
    assert CAT in markdown and "4821" not in markdown
    assert client.get(link(page, "Export JSON")).json["current"] == cat_reply  # the whole tree, the page's leaf
    # The stored path is still the PIN version: the page alone chose what was shared.
    assert PIN in client.get(f"/c/{cid}").text


def test_a_tab_shares_its_own_branch_when_another_tab_switched(client, app):
    cid, (cat, pin), _ = edited(client, app)
    client.post(f"/c/{cid}/messages/{cat}/switch")
    first_tab = client.get(f"/c/{cid}").text  # shows the cat version
    assert CAT in first_tab and PIN not in first_tab
    client.post(f"/c/{cid}/messages/{pin}/switch", headers={**HTMX, "HX-Target": "chat"})  # the second tab: ›
    snapshot = share_from(client, first_tab)
    assert CAT in snapshot and "4821" not in snapshot
    markdown = client.get(link(first_tab, "Export Markdown")).text
    assert CAT in markdown and "4821" not in markdown


def test_sending_with_htmx_moves_the_headers_links_to_the_new_reply(client, app):
    cid, _, _ = edited(client, app)
    response = client.post(f"/c/{cid}/messages", data={"text": "One more"}, headers=HTMX)
    reply = stored_conversations(app)[0]["messages"][-1]["id"]
    header = re.search(r'<header id="chat-header"[^>]*hx-swap-oob="true".*?</header>', response.text, re.S).group(0)
    assert f"leaf={reply}" in link(header, "Share") and f"leaf={reply}" in link(header, "Export Markdown")


def test_a_leaf_of_no_message_of_the_conversation_is_a_404(client, app):
    cid, _, _ = edited(client, app)
    other, other_reply = finished_conversation(client, "Another chat")
    assert client.get(f"/c/{cid}/share?leaf={other_reply}").status_code == 404
    assert client.post(f"/c/{cid}/share", data={"leaf": other_reply}).status_code == 404
    assert client.get(f"/c/{cid}/export.md?leaf={other_reply}").status_code == 404
    assert client.get(f"/c/{cid}/export.json?leaf=nonsense").status_code == 404
    assert not list(app.extensions["store"].keys(keys.SHARES))
