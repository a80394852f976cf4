"""Conversations as trees through the test client: edit, regenerate, switch and instructions through the
forms, with and without htmx; fork; export, share, search and the data download on a branched conversation."""

import io
import json
import re
import zipfile

import pytest

from chatbot import keys
from support import HTMX, FakeLLM, finish_reply, finished_conversation, stored_conversations

PANE = {**HTMX, "HX-Target": "chat"}


class RecordingFakeLLM(FakeLLM):
    """A FAKE model that keeps the messages of every reply asked of it (to check what the model receives)."""

    def __init__(self):
        super().__init__()
        self.requests, self.title_requests = [], []

    def stream(self, messages, model, **params):
        """Record the messages, then answer as FakeLLM does."""
        self.requests.append(messages)
        return super().stream(messages, model, **params)

    def complete(self, messages, model=None, **params):
        """Record a title's messages, then answer as FakeLLM does."""
        self.title_requests.append(messages)
        return super().complete(messages, model, **params)


@pytest.fixture
def app(make_app):
    """Replies come from a fake model: these tests are about the tree, not about what the model says."""
    app = make_app()
    app.extensions["llm"] = RecordingFakeLLM()
    return app


def three_exchanges(client, app):
    """A conversation of three finished exchanges; return its id and its stored messages."""
    cid, _ = finished_conversation(client, "Question 1")
    for number in (2, 3):
        client.post(f"/c/{cid}/messages", data={"text": f"Question {number}"})  # waits for the reply
    return cid, stored_conversations(app)[0]["messages"]


def test_without_javascript_edit_a_middle_message_then_go_back_with_previous_version(client, app):
    cid, messages = three_exchanges(client, app)
    second = messages[2]["id"]
    response = client.post(f"/c/{cid}/messages/{second}/edit", data={"text": "Question 2, better"})
    assert response.status_code == 303
    page = client.get(f"/c/{cid}").text
    assert "Question 2, better" in page and "Question 3" not in page and "2 / 2" in page
    assert 'aria-label="Previous version"' in page and 'aria-label="Next version"' in page
    assert app.extensions["llm"].requests[-1][-1]["content"] == "Question 2, better"
    assert "Question 3" not in json.dumps(app.extensions["llm"].requests[-1])  # the model reads the branch only
    response = client.post(f"/c/{cid}/messages/{second}/switch", data={"from": "previous"})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"#m-{second}")
    page = client.get(f"/c/{cid}").text  # the choice is stored: a reload shows the same path
    assert "Question 3" in page and "Question 2, better" not in page and "1 / 2" in page
    assert len(stored_conversations(app)[0]["messages"]) == 8


def test_with_htmx_switch_answers_the_pane_and_keeps_the_focus_on_the_control(client, app):
    cid, messages = three_exchanges(client, app)
    first_reply = messages[1]["id"]
    response = client.post(f"/c/{cid}/messages/{first_reply}/regenerate", headers=HTMX)
    assert response.headers["HX-Retarget"] == "#chat"
    new_reply = stored_conversations(app)[0]["messages"][-1]["id"]
    finish_reply(client, cid, new_reply)
    response = client.post(f"/c/{cid}/messages/{first_reply}/switch", data={"from": "previous"}, headers=PANE)
    assert response.status_code == 200 and "<html" not in response.text
    assert "Question 3" in response.text and ">1 / 2<" in response.text
    # Announced in the page's live region (out of band); the focus moves to Next, Previous being now disabled.
    assert '<div id="announcer" hx-swap-oob="innerHTML">Version 1 of 2</div>' in response.text
    assert 'aria-label="Next version" title="Next version" autofocus>›' in response.text
    assert not re.search(r"<textarea id=\"composer-text\"[^>]*autofocus", response.text)  # nor takes it back
    response = client.post(f"/c/{cid}/messages/{new_reply}/switch", data={"from": "next"}, headers=PANE)
    assert "Question 3" not in response.text and "autofocus>›" not in response.text  # next is now disabled
    assert 'aria-label="Previous version" title="Previous version" autofocus>‹' in response.text
    assert ">Version 2 of 2</div>" in response.text


def test_without_javascript_regenerate_adds_a_version_of_a_middle_reply(client, app):
    cid, messages = three_exchanges(client, app)
    first_reply = messages[1]["id"]
    response = client.post(f"/c/{cid}/messages/{first_reply}/regenerate")  # waits for the new reply
    assert response.status_code == 303
    new_reply = stored_conversations(app)[0]["messages"][-1]
    assert response.headers["Location"].endswith(f"#m-{new_reply['id']}")
    assert new_reply["parent"] == messages[0]["id"] and new_reply["status"] == "done"
    page = client.get(f"/c/{cid}").text
    assert "2 / 2" in page and "Question 2" not in page  # the new version's branch ends with it
    client.post(f"/c/{cid}/messages/{first_reply}/switch", data={"from": "previous"})
    assert "Question 3" in client.get(f"/c/{cid}").text


def test_instructions_are_set_without_javascript_shown_collapsed_and_reach_the_model(client, app):
    cid, _ = finished_conversation(client)
    assert 'href="/c/' + cid + '/instructions"' in client.get(f"/c/{cid}").text  # in the conversation's menu
    form = client.get(f"/c/{cid}/instructions")
    assert form.status_code == 200 and 'name="instructions"' in form.text
    too_long = client.post(f"/c/{cid}/instructions", data={"instructions": "x" * 4001})
    assert too_long.status_code == 413 and "the limit is 4,000" in too_long.text
    response = client.post(f"/c/{cid}/instructions", data={"instructions": "Answer like a pirate."})
    assert response.status_code == 303
    page = client.get(f"/c/{cid}").text
    assert '<details class="instructions"' in page and "Answer like a pirate." in page
    client.post(f"/c/{cid}/messages", data={"text": "Hello?"})
    system = app.extensions["llm"].requests[-1][0]
    assert system["role"] == "system" and system["content"].endswith("Answer like a pirate.")


def test_fork_from_here_opens_a_new_conversation_with_the_path_up_to_the_message(client, app):
    cid, messages = three_exchanges(client, app)
    response = client.post(f"/c/{cid}/messages/{messages[3]['id']}/fork")
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).text
    assert "Fork of" in page and "Question 2" in page and "Question 3" not in page
    assert len(stored_conversations(app)) == 2


def test_export_share_search_and_download_follow_the_tree(client, app):
    cid, messages = three_exchanges(client, app)
    client.post(f"/c/{cid}/messages/{messages[2]['id']}/edit", data={"text": "Question 2, better"})
    client.post(f"/c/{cid}/instructions", data={"instructions": "Be brief."})
    exported = client.get(f"/c/{cid}/export.json").json
    assert exported["version"] == 2 and len(exported["messages"]) == 8
    assert exported["current"] == exported["messages"][-1]["id"]
    assert exported["messages"][6]["parent"] == messages[1]["id"]
    markdown = client.get(f"/c/{cid}/export.md").text
    assert "Question 2, better" in markdown and "Question 3" not in markdown and "Be brief." in markdown
    client.post(f"/c/{cid}/share")
    [snapshot] = [json.loads(app.extensions["store"].read(key)[0]) for key in app.extensions["store"].keys(keys.SHARES)]
    assert [message["content"] for message in snapshot["messages"] if message["role"] == "user"] == [
        "Question 1",
        "Question 2, better",
    ]
    assert snapshot["instructions"] == "Be brief."
    results = client.get("/sidebar/search?q=Question+3", headers=HTMX).text
    assert f"/c/{cid}?m={messages[4]['id']}" in results
    page = client.get(f"/c/{cid}?m={messages[4]['id']}").text  # opens the branch that holds the match
    assert "Question 3" in page and "Question 2, better" not in page
    archive = zipfile.ZipFile(io.BytesIO(client.get("/account/export.zip").get_data()))
    [name] = [name for name in archive.namelist() if name.startswith("conversations/")]
    assert len(json.loads(archive.read(name))["messages"]) == 8


def test_instructions_and_a_fork_title_outside_the_bmp_are_kept_whole(client, app):
    cid, _ = finished_conversation(client)
    client.post(f"/sidebar/{cid}/rename", data={"title": "Moon 🌙 and 𝔘"}, headers=HTMX)
    instructions = "Answer in 😀 emoji, cite 𝔘."
    assert client.post(f"/c/{cid}/instructions", data={"instructions": instructions}).status_code == 303
    assert instructions in client.get(f"/c/{cid}").text
    assert instructions in client.get(f"/c/{cid}/export.md").text
    first = stored_conversations(app)[0]["messages"][0]["id"]
    forked = client.post(f"/c/{cid}/messages/{first}/fork")
    assert forked.status_code == 303
    assert "Fork of Moon 🌙 and 𝔘" in client.get(forked.headers["Location"]).text


def test_a_fork_is_titled_fork_of_until_its_first_own_exchange_titles_it_once(client, app):
    llm = app.extensions["llm"]
    llm.title = "Ancient Greek myths"
    cid, messages = three_exchanges(client, app)
    llm.title = "Roman roads explained"
    forked = client.post(f"/c/{cid}/messages/{messages[3]['id']}/fork")
    fork_id = forked.headers["Location"].rsplit("/", 1)[1]
    assert 'class="chat-title">Fork of Ancient Greek myths</h1>' in client.get(f"/c/{fork_id}").text
    asked = len(llm.title_requests)
    client.post(f"/c/{fork_id}/messages", data={"text": "A question of the fork's own"})  # waits for the reply
    assert 'class="chat-title">Roman roads explained</h1>' in client.get(f"/c/{fork_id}").text
    [title_request] = llm.title_requests[asked:]  # made of one exchange: the fork's first own one
    assert title_request[0]["content"] == "A question of the fork's own"
    llm.title = "Something else entirely"
    client.post(f"/c/{fork_id}/messages", data={"text": "And another"})
    assert len(llm.title_requests) == asked + 1  # once
    titles = {entry["id"]: entry["title"] for entry in _index(app)}
    assert titles == {fork_id: "Roman roads explained", cid: "Ancient Greek myths"}


def test_a_renamed_fork_keeps_the_name_it_was_given(client, app):
    cid, messages = three_exchanges(client, app)
    forked = client.post(f"/c/{cid}/messages/{messages[1]['id']}/fork")
    fork_id = forked.headers["Location"].rsplit("/", 1)[1]
    client.post(f"/sidebar/{fork_id}/rename", data={"title": "My branch"}, headers=HTMX)
    client.post(f"/c/{fork_id}/messages", data={"text": "Go on"})
    assert "My branch" in client.get(f"/c/{fork_id}").text
    assert {document["id"]: document["title"] for document in stored_conversations(app)}[fork_id] == "My branch"


def _index(app):
    """The guest's sidebar entries, as stored."""
    store = app.extensions["store"]
    [key] = [key for key in store.keys("users/") if key.endswith("/index.json")]
    return json.loads(store.read(key)[0])
