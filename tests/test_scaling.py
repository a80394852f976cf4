"""Live replies across processes: two gunicorn instances share one folder store and one real Redis.

The model is a FAKE OpenAI-compatible server (tests/support/fake_model.py) reached through the Hugging
Face backend: it streams a known reply at a known pace, so what each instance shows can be compared with
what was generated. What is under test is the app's processes, Redis and storage, all real.
"""

import json
import secrets
import time
from pathlib import Path

import pytest

from chatbot import keys
from chatbot.render import render_markdown
from support import FakeModelServer, Gunicorn, HttpChat, assemble, read_events

pytestmark = pytest.mark.gunicorn

# A reply's job saves its text (and renews its lease) every 0.5 s instead of 5, and its lease lasts 3 s
# instead of 20: the tests wait for a save, and for a dead job's lease to end, instead of sleeping.
SHORT_LEASE = {"REPLY_SAVE_SECONDS": "0.5", "REPLY_LEASE_SECONDS": "3"}


@pytest.fixture(scope="module")
def fake_model():
    """A FAKE model: 60 known pieces, one every 50 ms (a 3-second reply)."""
    with FakeModelServer(
        pieces=[f"piece{number}\n" if number % 10 == 9 else f"piece{number} " for number in range(60)], interval=0.05
    ) as server:
        yield server


@pytest.fixture(scope="module")
def instances(tmp_path_factory, redis_server, fake_model):
    """Two gunicorn instances (one process each) of one deployment: same secret, store and Redis."""
    data = tmp_path_factory.mktemp("shared") / "data"
    settings = {
        "SECRET_KEY": secrets.token_hex(32),
        "STORAGE_URL": f"file://{data}",
        "REDIS_URL": redis_server.url,
        "LLM_BACKEND": "huggingface",
        "HF_BASE_URL": fake_model.url,
        "CHATBOT_MODELS": "fake-model",
        "WEB_CONCURRENCY": "1",
        "GRACEFUL_TIMEOUT": "10",
        # A job saves (and renews its lease) every 0.5 s, and a stream checks storage after 2 s of silence:
        # a killed instance's reply reads as interrupted within seconds, not 30.
        **SHORT_LEASE,
        "QUIET_CHECK_SECONDS": "2",
    }
    first, second = Gunicorn(settings), Gunicorn(settings)
    with first, second:
        yield first, second, data


def stored_reply(data, cid, mid):
    """The reply as the shared folder store holds it."""
    [path] = Path(data).glob(keys.conversation("*", cid))
    conversation = json.loads(path.read_text())
    return next(message for message in conversation["messages"] if message["id"] == mid)


def wait_for_saved_text(data, cid, mid, seconds=15):
    """Wait until some of the reply's text is in storage: its job saves it every REPLY_SAVE_SECONDS."""
    deadline = time.monotonic() + seconds
    while not stored_reply(data, cid, mid)["content"]:
        assert time.monotonic() < deadline, "the reply's text was not saved while it was generated"
        time.sleep(0.05)


def read_until(response, name=None, count=None):
    """Read events until one named `name` (included) or `count` render events; return them."""
    got = []
    for event in read_events(response):
        got.append(event)
        if event.name == name or (count and sum(e.name == "render" for e in got) >= count):
            break
    return got


def shown(events):
    """The reply's HTML as a page builds it from these events."""
    return assemble(event.data for event in events if event.name == "render")


@pytest.mark.redis
def test_sent_through_one_instance_streamed_whole_through_the_other(instances, fake_model):
    first, second, data = instances
    chat = HttpChat(first.url)
    cid, mid = chat.start("Tell me something long.")
    with chat.at(second.url).stream(cid, mid) as response:
        events = read_until(response, "done")
    names = [event.name for event in events]
    assert names[0] == "sidebar" and names[-1] == "done" and "final" in names
    ids = [event.id for event in events if event.name == "render"]
    assert all(ids) and len(set(ids)) == len(ids), "every piece has an id of its own"
    assert shown(events) == str(render_markdown(fake_model.text))
    assert stored_reply(data, cid, mid)["content"] == fake_model.text
    assert stored_reply(data, cid, mid)["status"] == "done"


@pytest.mark.redis
def test_a_stream_resumes_on_the_other_instance_with_no_gap_or_duplicate(instances, fake_model):
    first, second, data = instances
    chat = HttpChat(first.url)
    cid, mid = chat.start("Tell me something long.")
    with chat.stream(cid, mid) as response:
        before = read_until(response, count=7)
    last_id = [event.id for event in before if event.id][-1]
    with chat.at(second.url).stream(cid, mid, last_event_id=last_id) as response:
        after = read_until(response, "done")
    render_events = [event.data for event in before + after if event.name == "render"]
    assert assemble(render_events) == str(render_markdown(fake_model.text)), "no gap, no duplicate"
    assert stored_reply(data, cid, mid)["content"] == fake_model.text


@pytest.mark.redis
def test_stop_through_the_other_instance_stops_the_job(instances, fake_model):
    first, second, data = instances
    chat = HttpChat(first.url)
    cid, mid = chat.start("Tell me something long.")
    with chat.at(second.url).stream(cid, mid) as response:
        seen = read_until(response, count=5)
        assert chat.at(second.url).stop(cid, mid).status_code == 204
        seen += read_until(response, "done")
    reply = stored_reply(data, cid, mid)
    assert reply["status"] == "stopped"
    assert fake_model.text.startswith(reply["content"]) and len(reply["content"]) < len(fake_model.text)
    final = next(event for event in seen if event.name == "final")
    assert 'data-status="stopped"' in final.data


@pytest.mark.redis
def test_redis_down_mid_reply_is_a_clear_error_and_nothing_is_lost(instances, fake_model, redis_server):
    first, _, data = instances
    chat = HttpChat(first.url)
    cid, mid = chat.start("Tell me something long.")
    try:
        with chat.stream(cid, mid) as response:
            seen = read_until(response, count=5)
            redis_server.kill()
            seen += read_until(response, "done")
        final = next(event for event in seen if event.name == "final")
        assert "Live updates are unavailable" in final.data or "Live replies are unavailable" in final.data
        deadline = time.monotonic() + 15
        while stored_reply(data, cid, mid)["status"] == "streaming" and time.monotonic() < deadline:
            time.sleep(0.2)
        reply = stored_reply(data, cid, mid)
        assert reply["status"] == "error" and "Live replies are unavailable" in reply["error"]
        assert reply["content"] and fake_model.text.startswith(reply["content"])
    finally:
        redis_server.restart()


@pytest.mark.redis
def test_a_killed_instance_leaves_the_reply_interrupted_and_retry_works(instances, fake_model):
    first, second, data = instances
    fake_model.interval = 0.2  # a 12-second reply, so the instance dies in the middle of it
    try:
        chat = HttpChat(first.url)
        cid, mid = chat.start("Tell me something long.")
        wait_for_saved_text(data, cid, mid)  # past the first save of the partial text
        first.kill()
        killed_at = time.monotonic()
        with chat.at(second.url).stream(cid, mid, timeout=60) as response:
            events = read_until(response, "done")
        assert time.monotonic() - killed_at < 15  # the lease (3 s), then a stream's check (after 2 s of quiet)
        final = next(event for event in events if event.name == "final")
        assert 'data-status="interrupted"' in final.data and "Retry" in final.data
        reply = stored_reply(data, cid, mid)
        assert reply["status"] == "interrupted" and reply["content"] and fake_model.text.startswith(reply["content"])

        fake_model.interval = 0.01
        assert chat.at(second.url).retry(cid, mid).status_code == 200
        with chat.at(second.url).stream(cid, mid) as response:
            read_until(response, "done")
        reply = stored_reply(data, cid, mid)
        assert reply["status"] == "done" and reply["content"] == fake_model.text
    finally:
        fake_model.interval = 0.05
        if not first.running():
            first.start()


@pytest.fixture
def lone_instance(tmp_path):
    """One gunicorn instance with no Redis, whose model is a FAKE writing 40 pieces at 0.2 s (8 s a reply)."""
    with FakeModelServer(pieces=[f"piece{number} " for number in range(40)], interval=0.2) as fake:
        settings = {
            "SECRET_KEY": secrets.token_hex(32),
            "STORAGE_URL": f"file://{tmp_path}/data",
            "LLM_BACKEND": "huggingface",
            "HF_BASE_URL": fake.url,
            "CHATBOT_MODELS": "fake-model",
            "GRACEFUL_TIMEOUT": "15",
            **SHORT_LEASE,
        }
        yield Gunicorn(settings), tmp_path / "data", fake


@pytest.mark.parametrize("grace, outcome", [("15", "done"), ("5", "interrupted")])
def test_sigterm_lets_a_reply_finish_within_the_grace_period_else_saves_it_interrupted(lone_instance, grace, outcome):
    server, data, fake = lone_instance
    server.settings["GRACEFUL_TIMEOUT"] = grace
    with server:
        chat = HttpChat(server.url)
        cid, mid = chat.start("Tell me something long.")
        wait_for_saved_text(data, cid, mid)  # the reply is under way
        server.stop(seconds=30)  # SIGTERM, as a deploy or the daily restart sends
    reply = stored_reply(data, cid, mid)
    assert reply["status"] == outcome
    if outcome == "done":
        assert reply["content"] == fake.text
    else:
        assert reply["content"] and fake.text.startswith(reply["content"]) and "restarted" in reply["error"]
