"""The live backends (a reply's event log and stop signal): the same contract in memory and on a real Redis."""

import threading
import time

import pytest

from chatbot.live import LiveUnavailable, open_live


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def live(request):
    """Each backend: this process's memory, and Redis (Debian's redis-server on a free port)."""
    if request.param == "memory":
        return open_live(None)
    server = request.getfixturevalue("redis_server")
    return open_live(server.url)


def kinds(found):
    return [event["kind"] for _, event in found]


def test_events_come_back_in_order_with_increasing_ids(live):
    live.start("c:1")
    ids = [live.append("c:1", {"kind": "piece", "text": str(number)}) for number in range(5)]
    found = live.read("c:1")
    assert [event_id for event_id, _ in found] == ids
    assert [event["text"] for _, event in found] == ["0", "1", "2", "3", "4"]


def test_reading_after_an_id_gives_exactly_what_followed(live):
    live.start("c:2")
    ids = [live.append("c:2", {"kind": "piece", "text": text}) for text in ("a", "b", "c")]
    assert [event["text"] for _, event in live.read("c:2", after=ids[0])] == ["b", "c"]
    assert live.read("c:2", after=ids[-1]) == []


def test_a_reader_waits_for_the_next_event(live):
    live.start("c:3")
    first = live.append("c:3", {"kind": "started"})
    threading.Timer(0.2, live.append, args=("c:3", {"kind": "done"})).start()
    begun = time.monotonic()
    found = live.read("c:3", after=first, timeout=3)
    assert kinds(found) == ["done"]
    assert time.monotonic() - begun < 2.5


def test_a_read_with_nothing_new_returns_empty_after_the_timeout(live):
    live.start("c:4")
    assert live.read("c:4", after=live.append("c:4", {"kind": "started"}), timeout=0.3) == []


def test_a_new_generation_starts_an_empty_log_whose_ids_follow_the_old(live):
    live.start("c:5")
    old = live.append("c:5", {"kind": "piece", "text": "old"})
    live.start("c:5")
    new = live.append("c:5", {"kind": "piece", "text": "new"})
    assert kinds(live.read("c:5")) == ["piece"]
    assert [event["text"] for _, event in live.read("c:5", after=old)] == ["new"]
    assert new != old


def test_stop_is_seen_by_another_reader_and_cleared_by_a_new_generation(live):
    live.start("c:6")
    assert not live.stop_requested("c:6")
    live.request_stop("c:6")
    assert live.stop_requested("c:6")
    live.start("c:6")
    assert not live.stop_requested("c:6")


@pytest.mark.parametrize("text", ["line\r\nbreak", "cr\ronly", "two\n\nparagraphs", "event: done\ndata: x", "é 😀"])
def test_any_text_is_kept_exactly(live, text):
    live.start("c:7")
    live.append("c:7", {"kind": "piece", "text": text})
    assert live.read("c:7")[0][1]["text"] == text


@pytest.mark.redis
def test_two_processes_share_one_redis_log(redis_server):
    writer, reader = open_live(redis_server.url), open_live(redis_server.url)
    writer.start("c:8")
    writer.append("c:8", {"kind": "piece", "text": "shared"})
    reader.request_stop("c:8")
    assert kinds(reader.read("c:8")) == ["piece"]
    assert writer.stop_requested("c:8")


@pytest.mark.redis
def test_redis_down_is_a_clear_error(redis_server):
    from support import free_port

    live = open_live(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(LiveUnavailable):
        live.append("c:9", {"kind": "started"})


def test_heroku_style_rediss_urls_encrypt_without_checking_the_self_signed_certificate():
    from chatbot.redis_client import connect

    heroku = connect("rediss://:secret@redis.example:6380/0")
    assert heroku.connection_pool.connection_class.__name__ == "SSLConnection"
    assert heroku.connection_pool.connection_kwargs["ssl_cert_reqs"] is None
    strict = connect("rediss://:secret@redis.example:6380/0?ssl_cert_reqs=required")
    assert strict.connection_pool.connection_kwargs["ssl_cert_reqs"] == "required"


def test_the_shared_pool_is_capped_and_takes_heroku_style_urls_as_connect_does():
    import redis

    from chatbot.redis_client import POOL_SIZE, connection_pool

    pool = connection_pool("rediss://:secret@redis.example:6380/0")
    assert isinstance(pool, redis.BlockingConnectionPool) and pool.max_connections == POOL_SIZE
    assert pool.connection_class.__name__ == "SSLConnection" and pool.connection_kwargs["ssl_cert_reqs"] is None
    strict = connection_pool("rediss://:secret@redis.example:6380/0?ssl_cert_reqs=required")
    assert strict.connection_kwargs["ssl_cert_reqs"] == "required"


def test_the_last_event_is_known_with_its_age(live):
    live.start("c:10")
    assert live.last("c:10") is None and live.last("c:never") is None
    live.append("c:10", {"kind": "started"})
    done = live.append("c:10", {"kind": "done"})
    event_id, event, age = live.last("c:10")
    assert (event_id, event) == (done, {"kind": "done"}) and 0 <= age < 5
    live.start("c:10")  # a new generation has logged nothing yet
    assert live.last("c:10") is None


@pytest.mark.redis
@pytest.mark.parametrize("after", ["18446744073709551616-0", "1-18446744073709551616", "99999999999999999999"])
def test_an_id_redis_could_never_give_reads_from_the_start_and_is_no_outage(redis_server, after):
    """A Redis Stream id is two numbers below 2**64: Redis refuses any other, and that refusal is the
    client's id, not Redis being down."""
    live = open_live(redis_server.url)
    live.start("c:11")
    live.append("c:11", {"kind": "started"})
    assert kinds(live.read("c:11", after=after)) == ["started"]


@pytest.mark.redis
def test_a_stream_resumed_after_an_id_over_redis_range_shows_the_reply_and_logs_no_error(
    make_app, redis_server, caplog
):
    from support import BlockingLLM, start_conversation, stream_url

    app = make_app(REDIS_URL=redis_server.url, RATELIMIT_ENABLED=False)
    model = app.extensions["llm"] = BlockingLLM()
    client = app.test_client()
    cid, mid = start_conversation(client)
    response = client.get(f"{stream_url(cid, mid)}?after={'9' * 20}", buffered=False)
    model.release.set()
    body = b"".join(response.response).decode()
    response.close()
    assert "unavailable" not in body and "Hello from a fake model." in body
    assert body.rstrip().endswith("event: done\ndata:")
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


def test_the_rate_limits_connect_to_redis_by_the_same_certificate_rule(make_app):
    from chatbot.limits.rates import limiter

    make_app(REDIS_URL="rediss://:secret@redis.example:6380/0")
    pool = limiter.storage.storage.connection_pool  # Flask-Limiter's redis-py client (nothing is sent yet)
    assert pool.connection_class.__name__ == "SSLConnection"
    assert pool.connection_kwargs["ssl_cert_reqs"] is None
