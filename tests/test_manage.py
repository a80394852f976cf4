"""Managing conversations and replies through the test client: rename, delete, search, stop,
regenerate, edit, export."""

import json
import threading
import time
from datetime import date

import pytest

from chatbot.llm import LLM
from chatbot.sidebar import group_by_date, highlight
from support import (
    HTMX,
    BlockingLLM,
    FakeLLM,
    FakeSlowLLM,
    finish_reply,
    finished_conversation,
    open_stream_at_first_token,
    parse_events,
    start_conversation,
    stored_conversations,
)


@pytest.fixture
def app(make_app):
    """Replies come from FakeLLM: these tests are about managing conversations, not about what the model says."""
    app = make_app()
    app.extensions["llm"] = FakeLLM()
    return app


def test_rename_sets_a_user_title_and_returns_the_entry(client, app):
    cid, _ = finished_conversation(client)
    response = client.post(f"/sidebar/{cid}/rename", data={"title": "  My <b>plans</b>  "}, headers=HTMX)
    assert response.status_code == 200
    assert f'data-conversation-id="{cid}"' in response.text
    assert "My &lt;b&gt;plans&lt;/b&gt;" in response.text
    [conversation] = stored_conversations(app)
    assert conversation["title"] == "My <b>plans</b>" and conversation["title_source"] == "user"
    sidebar = client.get("/sidebar/").text
    assert sidebar.count("data-conversation-id") == 1 and ">My &lt;b&gt;plans&lt;/b&gt;</a>" in sidebar


def test_renaming_the_conversation_on_screen_renames_its_heading_and_the_tab(client, app):
    cid, _ = finished_conversation(client)
    other, _ = finished_conversation(client)
    on_screen = {**HTMX, "HX-Current-URL": f"http://localhost/c/{cid}"}
    response = client.post(f"/sidebar/{cid}/rename", data={"title": "Shown"}, headers=on_screen)
    assert 'id="chat-title" class="chat-title" hx-swap-oob="true">Shown</h1>' in response.text
    assert "<title>Shown · Chatbot</title>" in response.text and 'aria-current="page"' in response.text
    # Another conversation's rename leaves the pane alone.
    response = client.post(f"/sidebar/{other}/rename", data={"title": "Elsewhere"}, headers=on_screen)
    assert "chat-title" not in response.text and "<title>" not in response.text


def test_a_user_title_is_never_overwritten_by_the_generator(client, app):
    model = app.extensions["llm"] = BlockingLLM()  # the reply ends only after the rename, whatever the load
    cid, mid = start_conversation(client, "Tell me a joke")
    client.post(f"/sidebar/{cid}/rename", data={"title": "Jokes"}, headers=HTMX)
    model.release.set()
    kinds = [kind for kind, _ in finish_reply(client, cid, mid)]
    assert kinds[-2:] == ["final", "done"]
    assert stored_conversations(app)[0]["title"] == "Jokes"


@pytest.mark.parametrize(
    "title, message", [("   ", "A title cannot be empty."), ("x" * 101, "Titles have at most 100 characters.")]
)
def test_rename_refuses_bad_titles(client, app, title, message):
    cid, _ = finished_conversation(client)
    before = stored_conversations(app)[0]["title"]
    response = client.post(f"/sidebar/{cid}/rename", data={"title": title}, headers=HTMX)
    assert response.status_code == 400 and message in response.text
    assert stored_conversations(app)[0]["title"] == before


def test_rename_without_javascript_is_a_page_then_a_redirect(client):
    cid, _ = finished_conversation(client)
    page = client.get(f"/sidebar/{cid}/rename")
    assert "<html" in page.text and 'name="title"' in page.text
    response = client.post(f"/sidebar/{cid}/rename", data={"title": "Plain form"})
    assert response.status_code == 303 and response.headers["Location"] == f"/c/{cid}"
    assert "Plain form" in client.get(f"/c/{cid}").text


def test_delete_removes_the_objects_and_the_index_entry(client, app):
    keep, _ = finished_conversation(client, "keep")
    gone, _ = finished_conversation(client, "delete me")
    response = client.post(f"/sidebar/{gone}/delete", headers={**HTMX, "HX-Current-URL": f"http://x/c/{gone}"})
    assert response.status_code == 200
    assert gone not in response.text and keep in response.text
    assert 'id="chat"' in response.text and response.headers["HX-Push-Url"] == "/new"
    assert [conversation["id"] for conversation in stored_conversations(app)] == [keep]
    assert client.get(f"/c/{gone}").status_code == 404
    store = app.extensions["store"]
    assert not [key for key in store.keys() if gone in key]
    assert all(
        entry["id"] != gone
        for entry in json.loads(store.read(next(key for key in store.keys() if key.endswith("index.json")))[0])
    )


def test_delete_of_another_conversation_leaves_the_pane(client):
    keep, _ = finished_conversation(client, "keep")
    gone, _ = finished_conversation(client, "delete me")
    response = client.post(f"/sidebar/{gone}/delete", headers={**HTMX, "HX-Current-URL": f"http://x/c/{keep}"})
    assert 'id="chat"' not in response.text and "HX-Push-Url" not in response.headers


def test_delete_without_javascript_asks_first(client, app):
    cid, _ = finished_conversation(client)
    page = client.get(f"/sidebar/{cid}/delete")
    assert "This cannot be undone." in page.text and stored_conversations(app)
    response = client.post(f"/sidebar/{cid}/delete")
    assert response.status_code == 303 and stored_conversations(app) == []


def test_search_matches_titles_and_message_text_and_marks_words(client):
    first, _ = finished_conversation(client, "Bananas are yellow")
    second, _ = finished_conversation(client, "Cherries are red")
    client.post(f"/sidebar/{second}/rename", data={"title": "Fruit colours"}, headers=HTMX)
    response = client.get("/sidebar/search?q=banana", headers=HTMX)
    assert f'data-conversation-id="{first}"' in response.text
    assert f'data-conversation-id="{second}"' not in response.text
    assert "<mark>Banana</mark>s are yellow" in response.text
    assert "1 result for" in response.text
    titles = client.get("/sidebar/search?q=fruit", headers=HTMX).text
    assert f'data-conversation-id="{second}"' in titles and "<mark>Fruit</mark> colours" in titles
    assert "0 results" in client.get("/sidebar/search?q=zebra", headers=HTMX).text


def test_search_without_javascript_is_a_page(client):
    cid, _ = finished_conversation(client, "Bananas are yellow")
    page = client.get("/sidebar/search?q=yellow")
    assert "<html" in page.text and f'data-conversation-id="{cid}"' in page.text
    assert 'value="yellow"' in page.text


class SpyLLM(LLM):
    """Wraps the real local model and records whether a stream was closed before it finished."""

    def __init__(self, llm):
        super().__init__(llm.models)
        self.llm, self.abandoned = llm, []
        self.closed = threading.Event()

    def stream(self, *args, **kwargs):
        finished = False
        try:
            yield from self.llm.stream(*args, **kwargs)
            finished = True
        finally:
            self.abandoned.append(not finished)
            self.closed.set()

    def complete(self, *args, **kwargs):
        return self.llm.complete(*args, **kwargs)


@pytest.mark.model
def test_stop_abandons_the_model_call_and_keeps_the_partial_reply(make_app, local_llm):
    app = make_app(MAX_TOKENS=1000)
    spy = app.extensions["llm"] = SpyLLM(local_llm)
    client = app.test_client()
    cid, mid = start_conversation(client, "Write a very long story about a dragon.")
    _, chunks = open_stream_at_first_token(client, cid, mid)
    assert client.post(f"/c/{cid}/messages/{mid}/stop", headers=HTMX).status_code == 204
    events = parse_events(b"".join(chunks).decode())
    final = dict(events)["final"]
    assert 'data-status="stopped"' in final and "Stopped." in final
    reply = stored_conversations(app)[0]["messages"][1]
    assert reply["status"] == "stopped" and reply["content"]
    assert spy.closed.wait(timeout=30)  # the producer thread closes the model's stream
    assert spy.abandoned == [True]


def fake_endless_llm():
    """A FAKE model that writes a piece every 20 ms for over half an hour: the test is about stopping."""
    return FakeSlowLLM(["word "] * 100_000, interval=0.02)


def test_stop_reaches_the_job_with_no_stream_open(client, app):
    app.extensions["llm"] = fake_endless_llm()
    cid, mid = start_conversation(client)
    time.sleep(0.2)
    assert client.post(f"/c/{cid}/messages/{mid}/stop", headers=HTMX).status_code == 204
    assert app.extensions["replies"].wait_for_jobs(5) == 0
    reply = stored_conversations(app)[0]["messages"][1]
    assert reply["status"] == "stopped" and reply["content"].startswith("word ")
    # The stream opens after the end: the reply as stored, the list and heading as stored, done.
    assert [kind for kind, _ in finish_reply(client, cid, mid)] == ["final", "title", "done"]


def test_regenerate_adds_a_new_version_of_the_reply_and_keeps_the_old(client, app):
    cid, mid = finished_conversation(client)
    response = client.post(f"/c/{cid}/messages/{mid}/regenerate", headers=HTMX)
    assert response.headers["HX-Retarget"] == "#chat" and 'data-status="streaming"' in response.text
    assert 'aria-label="Previous version"' in response.text and "2 / 2" in response.text
    stored = stored_conversations(app)[0]
    old, new = stored["messages"][1], stored["messages"][2]
    assert old["id"] == mid and old["status"] == "done" and new["parent"] == old["parent"]
    assert 'data-status="done"' in dict(finish_reply(client, cid, new["id"]))["final"]
    assert stored_conversations(app)[0]["messages"][2]["status"] == "done"


def test_an_earlier_finished_reply_can_be_regenerated(client, app):
    cid, first_reply = finished_conversation(client)
    response = client.post(f"/c/{cid}/messages", data={"text": "more"}, headers=HTMX)
    assert response.status_code == 200
    response = client.post(f"/c/{cid}/messages/{first_reply}/regenerate", headers=HTMX)
    assert response.status_code == 200 and "more" not in response.text  # the new branch ends with the new reply


def test_edit_adds_a_version_of_the_message_and_its_reply(client, app):
    cid, old_reply = finished_conversation(client, "Waht is 2+2?")
    user_id = stored_conversations(app)[0]["messages"][0]["id"]
    form = client.get(f"/c/{cid}/messages/{user_id}/edit", headers=HTMX)
    assert "Waht is 2+2?" in form.text and "<textarea" in form.text
    response = client.post(
        f"/c/{cid}/messages/{user_id}/edit", data={"text": "What is 2+2?"}, headers={**HTMX, "HX-Target": "chat"}
    )
    assert response.status_code == 200 and 'data-status="streaming"' in response.text
    messages = stored_conversations(app)[0]["messages"]
    assert [message["content"] for message in messages[:2]] == ["Waht is 2+2?", "Hello from a fake model."]
    assert messages[2]["content"] == "What is 2+2?" and messages[2]["parent"] is None
    finish_reply(client, cid, messages[3]["id"])
    assert stored_conversations(app)[0]["messages"][3]["status"] == "done"


def test_an_earlier_message_can_be_edited_without_javascript(client, app):
    cid, _ = finished_conversation(client, "first")
    client.post(f"/c/{cid}/messages", data={"text": "second"}, headers=HTMX)
    first_id = stored_conversations(app)[0]["messages"][0]["id"]
    response = client.post(f"/c/{cid}/messages/{first_id}/edit", data={"text": "first, again"})
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).text
    assert "first, again" in page and "second" not in page and "1 / 2" not in page and "2 / 2" in page


def test_edit_refuses_a_blank_message_and_keeps_the_original(client, app):
    cid, _ = finished_conversation(client, "original")
    user_id = stored_conversations(app)[0]["messages"][0]["id"]
    response = client.post(f"/c/{cid}/messages/{user_id}/edit", data={"text": "  "}, headers=HTMX)
    assert response.status_code == 400 and "Type a message first." in response.text
    assert stored_conversations(app)[0]["messages"][0]["content"] == "original"


def test_without_javascript_a_blank_edit_answers_the_edit_page_with_its_error(client, app):
    cid, _ = finished_conversation(client, "original")
    user_id = stored_conversations(app)[0]["messages"][0]["id"]
    response = client.post(f"/c/{cid}/messages/{user_id}/edit", data={"text": "  "})
    assert response.status_code == 400 and "<html" in response.text and "Type a message first." in response.text
    assert "<h1>Edit your message</h1>" in response.text


def test_export_as_markdown_and_json(client, app):
    cid, _ = finished_conversation(client, "Export this")
    client.post(f"/sidebar/{cid}/rename", data={"title": "My Export"}, headers=HTMX)
    markdown = client.get(f"/c/{cid}/export.md")
    assert markdown.headers["Content-Disposition"] == 'attachment; filename="my-export.md"'
    assert markdown.text.startswith("# My Export\n") and "**You:**\n\nExport this" in markdown.text
    assert "**Assistant (SmolLM2-135M-Instruct):**" in markdown.text
    exported = client.get(f"/c/{cid}/export.json")
    assert exported.mimetype == "application/json"
    assert exported.json["messages"][0]["content"] == "Export this"
    assert client.get(f"/c/{cid}/export.pdf").status_code == 404


def test_pages_carry_a_strict_content_security_policy(client):
    policy = client.get("/").headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    # The app has no frames, plugins or <base>: markup that got into a page could use none of them.
    for directive in ("frame-src 'none'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"):
        assert directive in policy


def test_group_by_date():
    today = date(2026, 11, 25)
    entries = [{"id": str(day), "updated_at": f"2026-11-{day:02d}T10:00:00+00:00"} for day in (25, 24, 20, 1)]
    groups = group_by_date(entries, today)
    assert [(label, [entry["id"] for entry in group]) for label, group in groups] == [
        ("Today", ["25"]),
        ("Yesterday", ["24"]),
        ("Previous 7 days", ["20"]),
        ("Older", ["1"]),
    ]


def test_highlight_escapes_and_marks():
    assert (
        str(highlight("<b>Tom</b> & tomatoes", "tom"))
        == "&lt;b&gt;<mark>Tom</mark>&lt;/b&gt; &amp; <mark>tom</mark>atoes"
    )


def test_a_reply_streaming_on_a_branch_left_by_an_edit_goes_on_and_is_saved(make_app):
    app = make_app()
    app.extensions["llm"] = FakeSlowLLM([f"word{n} " for n in range(20)], interval=0.02)
    client = app.test_client()
    cid, mid = start_conversation(client, "Write a long poem.")
    user_id = stored_conversations(app)[0]["messages"][0]["id"]
    client.post(f"/c/{cid}/messages/{user_id}/edit", data={"text": "Write a short poem."}, headers=HTMX)
    kinds = [kind for kind, _ in finish_reply(client, cid, mid)]
    assert "final" in kinds and kinds[-1] == "done"
    assert app.extensions["replies"].wait_for_jobs(5) == 0
    old = next(message for message in stored_conversations(app)[0]["messages"] if message["id"] == mid)
    assert old["status"] == "done" and old["content"].startswith("word0 word1")


def test_controls_on_unknown_conversations_or_messages_are_404(client):
    cid, mid = finished_conversation(client)
    unknown = "AAAAAAAAAAAAAAAA"
    assert client.post(f"/c/{cid}/messages/{unknown}/stop", headers=HTMX).status_code == 404
    assert client.post(f"/c/{unknown}/messages/{mid}/regenerate", headers=HTMX).status_code == 404
    assert client.post(f"/sidebar/{unknown}/delete", headers=HTMX).status_code == 404
    assert client.get(f"/c/{cid}").status_code == 200


def test_an_unknown_conversation_is_a_404_page_that_says_so(client):
    response = client.get("/c/doesnotexist")
    assert response.status_code == 404
    assert "<title>404 · Chatbot</title>" in response.text and "<h1>404</h1>" in response.text
    assert "This page or conversation does not exist." in response.text


def test_a_conversation_whose_first_reply_was_stopped_still_gets_a_title(client, app):
    app.extensions["llm"] = fake_endless_llm()
    cid, mid = start_conversation(client)
    time.sleep(0.2)
    client.post(f"/c/{cid}/messages/{mid}/stop", headers=HTMX)
    app.extensions["replies"].wait_for_jobs(10)
    [conversation] = stored_conversations(app)
    assert conversation["messages"][1]["status"] == "stopped"
    assert conversation["title"]  # the model's, or the user's first words
