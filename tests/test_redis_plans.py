"""Many users on a small Key-Value Store plan: gunicorn processes on one real redis-server limited as
Heroku's plans are (`mini`: 20 connections; and a full one: maxmemory with noeviction).

The model is a FAKE OpenAI-compatible server (tests/support/fake_model.py) reached through the Hugging Face
backend: it streams a known reply at a known pace, so what each stream shows can be compared with what was
generated. What is under test is the app's processes, Redis and storage, all real.
"""

import json
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chatbot import keys
from chatbot.live.compaction import COMPACT_AFTER_SECONDS
from chatbot.render import render_markdown
from chatbot.replies import LIVE_FULL
from support import (
    FakeLLM,
    FakeModelServer,
    Gunicorn,
    HttpChat,
    RedisServer,
    as_guest,
    assemble,
    build_app,
    fill_redis,
    parse_events,
    read_events,
    stream_url,
)

pytestmark = [pytest.mark.redis, pytest.mark.gunicorn]

GUESTS = 60
# Heroku Key-Value Store `mini` allows 20 connections in all.
MINI_CONNECTIONS = 20


@pytest.fixture(scope="module")
def fake_model():
    """A FAKE model: a 120-word reply, a word every 30 ms (3.6 seconds)."""
    words = [f"word{number}{'.' if number % 12 == 11 else ''} " for number in range(120)]
    with FakeModelServer(pieces=words, interval=0.03) as server:
        yield server


@pytest.fixture(scope="module")
def mini_redis():
    """redis-server refusing a 21st connection, as the `mini` plan does."""
    with RedisServer(arguments=("--maxclients", str(MINI_CONNECTIONS))) as server:
        yield server


def settings(data, redis_url, fake, **more):
    """One deployment's settings; its many guests come from one address (the test), so the per-address
    limits are raised."""
    return {
        "SECRET_KEY": secrets.token_hex(32),
        "STORAGE_URL": f"file://{data}",
        "REDIS_URL": redis_url,
        "LLM_BACKEND": "huggingface",
        "HF_BASE_URL": fake.url,
        "CHATBOT_MODELS": "fake-model",
        "GRACEFUL_TIMEOUT": "10",
        "MESSAGE_LIMIT_PER_IP": "1000 per minute",
        "STREAM_LIMIT_PER_IP": "1000 per minute",
        "MAX_OPEN_STREAMS_PER_IP": "1000",
        "MAX_REPLIES_AT_ONCE_PER_IP": "1000",
        **more,
    }


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, mini_redis, fake_model):
    """Two gunicorn instances of one process each (so both surely serve), one store, the `mini`-sized Redis."""
    data = tmp_path_factory.mktemp("plans") / "data"
    shared = settings(data, mini_redis.url, fake_model, WEB_CONCURRENCY="1")
    with Gunicorn(shared) as first, Gunicorn(shared) as second:
        yield (first, second), data


def stored_reply(data, cid, mid):
    """The reply as the folder store holds it."""
    [path] = Path(data).glob(keys.conversation("*", cid))
    conversation = json.loads(path.read_text())
    return next(message for message in conversation["messages"] if message["id"] == mid)


def read_until(response, name=None, count=None):
    """Read events until one named `name` (included) or `count` render events; return them."""
    got = []
    for event in read_events(response):
        got.append(event)
        if event.name == name or (count and sum(each.name == "render" for each in got) >= count):
            break
    return got


def shown(events):
    """The reply's HTML as a page builds it from these events' render patches."""
    return assemble(event.data for event in events if event.name == "render")


def guest_reply(sender, streamer, everyone_ready):
    """One guest: open the chat, send through one process with the others at once, read the reply's stream
    to its end through the other."""
    chat = HttpChat(sender.url)
    everyone_ready.wait(60)
    cid, mid = chat.start("Tell me something.")
    with chat.at(streamer.url).stream(cid, mid) as response:
        return cid, mid, read_until(response, "done")


def test_sixty_replies_at_once_on_two_processes_within_the_mini_plans_twenty_connections(
    deployment, fake_model, mini_redis
):
    (first, second), data = deployment
    everyone_ready = threading.Barrier(GUESTS)
    pairs = [(first, second), (second, first)] * (GUESTS // 2)
    with mini_redis.peak_clients() as clients, ThreadPoolExecutor(GUESTS) as pool:
        replies = list(pool.map(lambda pair: guest_reply(*pair, everyone_ready), pairs))
    print(f"\n{GUESTS} replies at once on 2 processes: at most {clients.peak} Redis connections")
    expected = str(render_markdown(fake_model.text))
    for cid, mid, events in replies:
        final = next(event for event in events if event.name == "final")
        assert events[-1].name == "done" and shown(events) == expected, "complete, no gap or duplicate"
        assert stored_reply(data, cid, mid)["content"] == fake_model.text
        assert stored_reply(data, cid, mid)["status"] == "done" and expected in final.data
    assert clients.peak + 1 <= MINI_CONNECTIONS  # the sampler's own connection counts against the plan too


def test_resume_works_while_a_reply_streams_and_after_its_log_was_compacted(deployment, fake_model, mini_redis):
    (first, second), data = deployment
    chat, expected = HttpChat(first.url), str(render_markdown(fake_model.text))
    cid, mid = chat.start("Tell me something.")
    with chat.stream(cid, mid) as response:
        before = read_until(response, count=5)
    cut_at = [event.id for event in before if event.id][-1]
    with chat.at(second.url).stream(cid, mid, last_event_id=cut_at) as response:
        after = read_until(response, "done")
    assert shown(before + after) == expected, "resumed while streaming: no gap, no duplicate"

    log = f"chatbot:reply:{cid}:{mid}:events"
    client = mini_redis.client()
    try:
        deadline = time.monotonic() + COMPACT_AFTER_SECONDS + 10
        while client.xlen(log) != 3 and time.monotonic() < deadline:  # compacted a few seconds after the end
            time.sleep(0.1)
        [(_, fields)] = client.xrevrange(log, count=1)
        assert json.loads(fields[b"e"])["kind"] == "done" and client.xlen(log) == 3, "final, title, done"
        held = client.memory_usage(log, samples=0)
    finally:
        client.close()
    print(f"\nfinished 120-word reply: its log holds {held} B; its Markdown as HTML is {len(expected.encode())} B")
    assert held <= 2 * len(expected.encode())
    with chat.stream(cid, mid, last_event_id=cut_at) as response:
        resumed = read_until(response, "done")  # a process may still hold the patches its streams read
    assert [event.name for event in resumed][-3:] == ["final", "title", "done"] and expected in resumed[-3].data

    # A process that never followed the reply (the test's own app, on the same Redis and store) reads the
    # compacted log: after an id before the final, the end; afresh, the reply at once.
    [path] = Path(data).glob(keys.conversation("*", cid))
    app = build_app(Path(data).parent, FakeLLM(), REDIS_URL=mini_redis.url, SECRET_KEY=secrets.token_hex(32))
    try:
        client = as_guest(app.test_client(), path.relative_to(data).parts[1])
        resumed = parse_events(client.get(stream_url(cid, mid), headers={"Last-Event-ID": cut_at}).text)
        afresh = parse_events(client.get(stream_url(cid, mid)).text)
    finally:
        app.extensions["live"].close()
    assert [name for name, _ in resumed] == ["final", "title", "done"]
    assert expected in resumed[0][1] and 'data-status="done"' in resumed[0][1]
    assert [name for name, _ in afresh] == ["final", "title", "done"] and expected in afresh[0][1]
    assert stored_reply(data, cid, mid)["content"] == fake_model.text


def test_a_full_redis_ends_the_reply_with_a_clear_error_keeps_its_text_and_the_next_works_once_memory_frees(
    tmp_path,
):
    paragraphs = [f"Paragraph {number}. " + "Some words of a long reply. " * 60 + "\n\n" for number in range(150)]
    full = RedisServer(arguments=("--maxmemory-policy", "noeviction"))
    with FakeModelServer(pieces=paragraphs[:3], interval=0.05) as fake, full:
        with Gunicorn(settings(tmp_path / "data", full.url, fake, WEB_CONCURRENCY="1")) as server:
            chat, client = HttpChat(server.url), full.client()
            cid, mid = chat.start("Say a little.")  # a reply before: what the app keeps in Redis is there
            with chat.stream(cid, mid) as response:
                read_until(response, "done")
            fake.pieces = paragraphs  # 7.5 seconds of long paragraphs
            cid, mid = chat.start("Tell me something long.")
            with chat.stream(cid, mid) as response:
                seen = read_until(response, count=15)
                client.config_set("maxmemory", client.info("memory")["used_memory"] + 1024 * 1024)
                fillers = fill_redis(client)
                full_at = time.monotonic()
                seen += read_until(response, "done")
            # The job's own final event says it, at once: not the stream's look at storage every 10 seconds.
            assert time.monotonic() - full_at < 5
            final = next(event for event in seen if event.name == "final")
            assert "no room left for live replies" in final.data and 'data-status="error"' in final.data
            reply = stored_reply(tmp_path / "data", cid, mid)
            assert reply["status"] == "error" and reply["error"] == LIVE_FULL
            assert len(reply["content"]) > 15 * len(paragraphs[0]) and fake.text.startswith(reply["content"])

            client.delete(*fillers)  # memory frees
            fake.pieces = paragraphs[:3]
            cid, mid = chat.start("Say a little again.")
            with chat.stream(cid, mid) as response:
                events = read_until(response, "done")
            assert shown(events) == str(render_markdown(fake.text))
            assert stored_reply(tmp_path / "data", cid, mid)["status"] == "done"
            client.close()
