"""The reply's event stream through the test client: framing, ids, resume, attaching late, no JavaScript.

The model is FakeLLM (a fake that yields known pieces): what is tested is how the app frames and replays
them, so the exact text must be known.
"""

import re
import time

import pytest
import requests

from chatbot.config import TIMING_DEFAULTS, ConfigError, from_environment
from chatbot.conversations import Conversations
from chatbot.events import frame
from chatbot.render import render_markdown
from chatbot.replies import SAVE_FAILED
from support import (
    HTMX,
    BlockingLLM,
    FakeLLM,
    FakeModelServer,
    FakeSlowLLM,
    HttpChat,
    LiveServer,
    SlowTitleLLM,
    assemble,
    finished_conversation,
    start_conversation,
    stored_conversations,
    stream_url,
)

TRICKY = [
    "plain ",
    "cr\ronly ",
    "crlf\r\nline ",
    "two\n\nparagraphs ",
    "event: done\n",
    "data: forged\n\n",
    "id: 9\n",
    "end",
]


# The whole log, whether the reply is still being written or already finished (a fake model may finish
# before the test opens the stream; opened afresh, a finished reply is sent whole, without its log).
FROM_THE_START = {"Last-Event-ID": "0"}


def sse_events(body):
    """(id, name, data) of each event in a text/event-stream body, parsed as a browser does (comments skipped)."""
    found = []
    for block in body.split("\n\n"):
        event_id, name, data = None, "message", []
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "id":
                event_id = value
            elif field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if data:
            found.append((event_id, name, "\n".join(data)))
    return found


def shown(found):
    """The reply's HTML as a page builds it from the render events."""
    return assemble(data for _, name, data in found if name == "render")


def test_any_model_text_arrives_intact_and_cannot_forge_an_event(make_app):
    app = make_app()
    app.extensions["llm"] = FakeLLM(pieces=TRICKY)
    client = app.test_client()
    cid, mid = start_conversation(client)
    body = client.get(stream_url(cid, mid), headers=FROM_THE_START).text
    assert "\r" not in body, "a bare carriage return would end an SSE line"
    found = sse_events(body)
    assert [name for _, name, _ in found].count("done") == 1 and found[-1][1] == "done"
    assert stored_conversations(app)[0]["messages"][1]["content"] == "".join(TRICKY)
    assert shown(found) == str(render_markdown("".join(TRICKY)))


@pytest.mark.parametrize(
    "pieces, text",
    [
        (["Hi \ud83d", "\ude00 there"], "Hi 😀 there"),  # the pair is joined
        (["Hi ", "there \ud83d"], "Hi there \ufffd"),  # the other half never came: the replacement character
    ],
)
def test_an_emoji_split_across_two_pieces_arrives_whole(make_app, pieces, text):
    # A FAKE OpenAI-compatible model sending an emoji's two UTF-16 halves in two chunks: its JSON escapes
    # each, "\\ud83d" then "\\ude00", as a real server may.
    with FakeModelServer(pieces=pieces, interval=0.01) as model:
        app = make_app(LLM_BACKEND="huggingface", HF_BASE_URL=model.url, CHATBOT_MODELS=["fake-model"])
        client = app.test_client()
        cid, mid = start_conversation(client)
        found = sse_events(client.get(stream_url(cid, mid), headers=FROM_THE_START).text)
    assert [name for _, name, _ in found][-3:] == ["final", "title", "done"]
    reply = stored_conversations(app)[0]["messages"][1]
    assert (reply["status"], reply["content"]) == ("done", text)
    assert shown(found) == str(render_markdown(text))


def test_a_reply_whose_final_save_fails_unexpectedly_still_ends_saved_as_an_error(make_app, monkeypatch, caplog):
    app = make_app()
    app.extensions["llm"] = FakeLLM(pieces=["kept ", "text"])
    original, calls = Conversations.finish_reply, []

    def fails_once(self, *args, **kwargs):  # a fault of the app's own, not storage's, on the first save
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("a fault")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Conversations, "finish_reply", fails_once)
    client = app.test_client()
    cid, mid = start_conversation(client)
    found = sse_events(client.get(stream_url(cid, mid), headers=FROM_THE_START).text)
    assert [name for _, name, _ in found][-2:] == ["final", "done"]
    reply = stored_conversations(app)[0]["messages"][1]
    assert (reply["status"], reply["content"], reply["error"]) == ("error", "kept text", SAVE_FAILED)
    assert SAVE_FAILED in found[-2][2]
    assert "could not save a reply" in caplog.text


def test_every_event_has_an_increasing_id_and_resuming_gives_exactly_the_rest(client, app):
    app.extensions["llm"] = FakeLLM(pieces=[f"p{number} " for number in range(20)])
    cid, mid = start_conversation(client)
    whole = sse_events(client.get(stream_url(cid, mid), headers=FROM_THE_START).text)
    ids = [int(event_id) for event_id, _, _ in whole]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert shown(whole) == str(render_markdown("".join(f"p{number} " for number in range(20))))
    for cut in range(len(whole) - 1):
        resumed = sse_events(client.get(stream_url(cid, mid), headers={"Last-Event-ID": whole[cut][0]}).text)
        assert [event_id for event_id, _, _ in whole[: cut + 1] + resumed] == [event_id for event_id, _, _ in whole]
    # The page's own fallback when htmx opens a new EventSource: ?after= in the URL.
    resumed = sse_events(client.get(stream_url(cid, mid) + f"?after={whole[1][0]}").text)
    assert shown(whole[:2] + resumed) == shown(whole)


def test_a_page_opened_mid_reply_attaches_to_the_reply(client, app):
    cid, mid = start_conversation(client)
    page = client.get(f"/c/{cid}").text
    # Either still streaming (attaches to the stream) or already done (rendered): never lost, never twice.
    streaming = re.search(r'sse-connect="([^"]+)"', page)
    if streaming:
        assert streaming.group(1).startswith(stream_url(cid, mid))
    else:
        assert 'data-status="done"' in page


def test_a_stream_opened_after_a_quick_reply_ended_still_lists_and_titles_its_conversation(client, app):
    # The reply, its sidebar event and its title all came before the page's stream connected.
    app.extensions["llm"] = FakeLLM(title="Quick fake answer")
    cid, mid = start_conversation(client)
    app.extensions["replies"].wait_for_jobs(10)
    events = sse_events(client.get(stream_url(cid, mid)).text)
    assert [name for _, name, _ in events] == ["final", "title", "done"]
    title = events[1][2]
    assert f'data-conversation-id="{cid}"' in title  # the sidebar lists the new conversation
    assert 'class="chat-title" hx-swap-oob="true">Quick fake answer</h1>' in title  # and the heading has its title


def test_two_readers_of_one_reply_see_the_same_events(client, app):
    app.extensions["llm"] = FakeLLM(pieces=[f"w{number} " for number in range(10)])
    cid, mid = start_conversation(client)
    first = sse_events(client.get(stream_url(cid, mid), headers=FROM_THE_START).text)
    second = sse_events(client.get(stream_url(cid, mid), headers={"Last-Event-ID": "0"}).text)
    assert shown(first) == shown(second) == str(render_markdown("".join(f"w{number} " for number in range(10))))


def test_without_javascript_the_post_waits_for_the_reply(client, app):
    response = client.post("/new", data={"text": "Hello without JavaScript"})
    assert response.status_code == 303
    reply = stored_conversations(app)[0]["messages"][1]
    assert reply["status"] == "done" and reply["content"] == "Hello from a fake model."


def test_stop_without_javascript_redirects_back(client, app):
    cid, mid = start_conversation(client)
    response = client.post(f"/c/{cid}/messages/{mid}/stop")
    assert response.status_code == 303 and response.headers["Location"].startswith(f"/c/{cid}")


def test_a_missing_reply_is_a_404_before_any_stream(client):
    cid, _ = start_conversation(client)
    assert client.get(stream_url(cid, "A" * 16), headers=HTMX).status_code == 404


def test_open_streams_per_user_are_capped_and_freed_when_they_close(make_app):
    app = make_app(MAX_OPEN_STREAMS=2, MAX_REPLIES_AT_ONCE=5, WTF_CSRF_ENABLED=True)
    # A FAKE model writing a piece every 50 ms for 100 s: the test is about open streams.
    app.extensions["llm"] = FakeSlowLLM(["word "] * 2000, interval=0.05)
    with LiveServer(app) as server:  # over HTTP: each stream is served by a thread of its own, as in production
        chat = HttpChat(server.url)
        cid, mid = chat.start("Write forever.")
        first, second = chat.stream(cid, mid), chat.stream(cid, mid)
        with pytest.raises(requests.HTTPError) as refused:
            chat.stream(cid, mid)
        assert refused.value.response.status_code == 429 and "Retry-After" in refused.value.response.headers
        first.close()  # a tab closed: its stream is counted no more
        deadline = time.monotonic() + 10
        while True:
            try:
                fourth = chat.stream(cid, mid)
                break
            except requests.HTTPError:
                assert time.monotonic() < deadline, "a closed stream was never freed"
                time.sleep(0.2)
        for response in (second, fourth):
            response.close()
        chat.stop(cid, mid)


def read_to_the_end(response):
    """The rest of an unbuffered test-client stream, as text; the stream is closed after."""
    try:
        return b"".join(response.response).decode()
    finally:
        response.close()


# Settings with which a stream looks around (storage, the log) every 50 ms of silence instead of every 10 s.
QUICK_CHECKS = {"STREAM_READ_SECONDS": 0.05, "QUIET_CHECK_SECONDS": 0.05}


def test_a_resume_id_past_the_logs_end_does_not_hold_the_stream(make_app):
    """No reply ever logs such an id, so the stream cannot wait for what follows it: it reads from the start."""
    app = make_app(**QUICK_CHECKS, FINISHED_QUIET_SECONDS=8)  # production's minute, shortened
    model = app.extensions["llm"] = BlockingLLM()
    client = app.test_client()
    cid, mid = start_conversation(client)
    response = client.get(f"{stream_url(cid, mid)}?after=99999999", buffered=False)
    model.release.set()
    begun = time.monotonic()
    body = read_to_the_end(response)
    assert time.monotonic() - begun < 4, "the stream waited for a quiet minute after the reply ended"
    found = sse_events(body)
    assert found[-1][1] == "done" and "final" in [name for _, name, _ in found]
    assert "Hello from a fake model." in body


def test_a_finished_replys_quiet_counts_from_its_last_event_not_from_the_streams_start(make_app):
    """A title that never comes ends the reply's streams FINISHED_QUIET_SECONDS after the log's last event:
    a page opened later does not wait that long again."""
    quiet = 0.9
    app = make_app(**QUICK_CHECKS, FINISHED_QUIET_SECONDS=quiet)
    model = app.extensions["llm"] = SlowTitleLLM()
    client = app.test_client()
    cid, mid = start_conversation(client)
    try:
        # This stream ends once the log has been quiet that long after the final event (the title is late).
        first = read_to_the_end(client.get(stream_url(cid, mid), headers=FROM_THE_START, buffered=False))
        assert "final" in [name for _, name, _ in sse_events(first)]
        begun = time.monotonic()
        body = read_to_the_end(client.get(stream_url(cid, mid), buffered=False))  # a page opened later
        assert time.monotonic() - begun < quiet, "the quiet was counted again from the stream's start"
        found = sse_events(body)
        assert found[-1][1] == "done" and "Hello from a fake model." in body
    finally:
        model.release.set()


# The timing settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, relation",
    [
        ({"REPLY_SAVE_SECONDS": 10}, "REPLY_LEASE_SECONDS must be at least 3 times REPLY_SAVE_SECONDS"),
        ({"STOP_POLL_SECONDS": 6}, "STOP_POLL_SECONDS and RENDER_SECONDS must be below REPLY_SAVE_SECONDS"),
        ({"STREAM_READ_SECONDS": 12}, "STREAM_READ_SECONDS must be below HEARTBEAT_SECONDS"),
        ({"HEARTBEAT_SECONDS": 54.5}, "and the two together below 55"),
        ({"QUIET_CHECK_SECONDS": 60}, "QUIET_CHECK_SECONDS must be below FINISHED_QUIET_SECONDS"),
        ({"NO_JS_WAIT_SECONDS": 30}, "NO_JS_WAIT_SECONDS must be above STREAM_READ_SECONDS and below 30"),
    ],
)
def test_timing_settings_that_break_a_relation_stop_the_start_up_naming_it(make_app, settings, relation):
    with pytest.raises(ConfigError) as refused:
        make_app(**settings)
    assert relation in str(refused.value)
    [(name, value)] = settings.items()
    assert f"{name}={value:g}" in str(refused.value)  # the values as they are now


def test_a_timing_setting_of_zero_stops_the_start_up(make_app):
    with pytest.raises(ConfigError, match="RENDER_SECONDS must be above 0"):
        make_app(RENDER_SECONDS=0)


def test_timing_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("REPLY_SAVE_SECONDS", "0.5")
    monkeypatch.setenv("REPLY_LEASE_SECONDS", "3")
    settings = from_environment()
    assert (settings["REPLY_SAVE_SECONDS"], settings["REPLY_LEASE_SECONDS"]) == (0.5, 3)
    assert settings["HEARTBEAT_SECONDS"] == TIMING_DEFAULTS["HEARTBEAT_SECONDS"]


@pytest.mark.parametrize("after", ["²", "9" * 5000])
def test_a_malformed_resume_id_is_not_a_server_error(app, after):
    client = app.test_client()
    cid, mid = finished_conversation(client)
    app.testing = False  # answer as in production: an exception is a 500 page
    assert client.get(f"{stream_url(cid, mid)}?after={after}").status_code == 200


def test_model_text_cannot_forge_or_end_an_sse_event():
    forged = frame("render", "a\r\n\r\nevent: final\ndata: <b>x</b>\r\rid: 9\n\n")
    events = forged.split("\n\n")
    assert events[1:] == [""]  # one event, however the text breaks its lines
    assert all(line.startswith(("event: render", "data: ")) for line in events[0].split("\n"))
    assert "\r" not in forged
