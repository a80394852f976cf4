"""The Redis live backend on small plans: a fixed few connections per process however many streams wait,
a finished reply's log compacted to about the size of its end, and a full Redis (maxmemory, noeviction)
said plainly. Each test runs against a real redis-server of its own where what it counts is the server's."""

import threading
import time

import pytest

from chatbot.live import LiveFull, LiveUnavailable, id_order, open_live
from chatbot.live.reader import BLOCK_MS
from chatbot.redis_client import POOL_SIZE
from support import RedisServer, fill_redis

pytestmark = pytest.mark.redis

PATCH = "<p>" + "a few words of a reply " * 8 + "</p>"


@pytest.fixture
def own_redis():
    """A redis-server of this test's own: its client count is this test's."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def live(own_redis):
    """The Redis backend on own_redis, compacting finished logs at once; closed at the end (its threads and
    connections)."""
    backend = open_live(own_redis.url)
    backend.compactor.delay = 0
    yield backend
    backend.close()


def kinds(found):
    return [event["kind"] for _, event in found]


def wait_for(condition, seconds=10):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.02)


def test_two_hundred_streams_waiting_in_one_process_hold_at_most_five_connections(live, own_redis):
    keys = [f"c:{number}" for number in range(200)]
    for key in keys:
        live.start(key)
    found = {}

    def wait(key):
        found[key] = live.read(key, None, timeout=5)

    readers = [threading.Thread(target=wait, args=(key,)) for key in keys]
    for reader in readers:
        reader.start()
    wait_for(lambda: live.reader.following() == 200)
    waiting = own_redis.connected_clients() - 1  # not the question's own
    for key in keys:
        live.append(key, {"kind": "started", "key": key})
    for reader in readers:
        reader.join(10)
    assert waiting <= POOL_SIZE + 1 <= 5
    assert all([event["key"] for _, event in found[key]] == [key] for key in keys), "each reader got its own event"
    assert own_redis.connected_clients() - 1 <= 5


def test_the_app_shares_one_pool_between_live_replies_rate_limits_and_reply_slots(make_app, own_redis):
    from chatbot.limits.rates import limiter

    app = make_app(REDIS_URL=own_redis.url)
    try:
        pool = app.extensions["redis_pool"]
        assert app.extensions["live"].pool is pool
        assert app.extensions["reply_slots"].backend._redis.connection_pool is pool
        assert limiter.storage.storage.connection_pool is pool
    finally:
        app.extensions["live"].close()


def test_a_stream_opened_while_the_reader_blocks_gets_its_first_event_without_waiting_out_the_block(live):
    live.start("w:1")
    live.start("w:2")
    threading.Thread(target=live.read, args=("w:1", None, 3), daemon=True).start()
    wait_for(lambda: live.reader.following() == 1)  # the thread now blocks on w:1 alone
    threading.Timer(0.1, live.append, args=("w:2", {"kind": "started"})).start()
    begun = time.monotonic()
    found = live.read("w:2", None, timeout=3)
    assert kinds(found) == ["started"]
    assert time.monotonic() - begun < 0.1 + BLOCK_MS / 1000 / 2, "the new stream woke the reader"


def test_a_waiting_read_says_redis_is_down_when_it_goes_away(live, own_redis):
    live.start("d:1")
    outcome = []

    def wait():
        try:
            live.read("d:1", None, timeout=5)
            outcome.append("returned")
        except LiveUnavailable:
            outcome.append("unavailable")

    reader = threading.Thread(target=wait)
    reader.start()
    wait_for(lambda: live.reader.following() == 1)
    own_redis.kill()
    reader.join(10)
    assert outcome == ["unavailable"]


def log_a_reply(live, key, patches=100):
    """A reply's events as a job logs them; return their ids by kind."""
    live.start(key)
    ids = {"started": live.append(key, {"kind": "started"})}
    ids["render"] = [live.append(key, {"kind": "render", "patch": PATCH}) for _ in range(patches)]
    ids["final"] = live.append(key, {"kind": "final"})
    ids["title"] = live.append(key, {"kind": "title"})
    ids["done"] = live.append(key, {"kind": "done"})
    live.finish(key)
    return ids


def compacted(server, key):
    """Wait until the log is its final event, title and done."""
    client = server.client()
    try:
        wait_for(lambda: client.xlen(f"chatbot:reply:{key}:events") == 3)
    finally:
        client.close()


def log_bytes(server, key):
    client = server.client()
    try:
        return client.memory_usage(f"chatbot:reply:{key}:events", samples=0)  # every node, not a sample
    finally:
        client.close()


def test_a_finished_log_keeps_its_final_event_and_what_follows_under_the_same_ids(live, own_redis):
    live.start("f:1")
    for _ in range(100):
        live.append("f:1", {"kind": "render", "patch": PATCH})
    streaming = log_bytes(own_redis, "f:1")
    ids = log_a_reply(live, "f:1")
    compacted(own_redis, "f:1")
    end = [ids["final"], ids["title"], ids["done"]]
    assert [event_id for event_id, _ in live.read("f:1")] == end, "from the start: the end"
    assert [event_id for event_id, _ in live.read("f:1", after=ids["render"][40])] == end, "resuming: the end"
    assert [event_id for event_id, _ in live.read("f:1", after=ids["final"])] == end[1:]
    assert id_order(ids["final"]) > id_order(ids["render"][-1])
    finished = log_bytes(own_redis, "f:1")
    assert finished <= 1024 and finished * 20 < streaming, (finished, streaming)
    live.start("f:1")  # Retry: a new generation's ids still follow the old ones
    assert id_order(live.append("f:1", {"kind": "started"})) > id_order(ids["done"])


def test_a_stream_a_little_behind_still_gets_every_patch_before_the_log_is_compacted(own_redis):
    live = open_live(own_redis.url)  # compacting after COMPACT_AFTER_SECONDS, as deployed
    try:
        ids = log_a_reply(live, "f:2", patches=30)
        assert kinds(live.read("f:2", after=ids["render"][9])) == ["render"] * 20 + ["final", "title", "done"]
        assert live.compactor.pending() == 1
    finally:
        live.close()


def test_a_reader_waiting_in_another_process_gets_the_final_event(live, own_redis):
    other = open_live(own_redis.url)  # another process's backend: its own reader thread
    try:
        live.start("f:3")
        last = [live.append("f:3", {"kind": "render", "patch": PATCH}) for _ in range(30)][-1]
        threading.Timer(0.2, live.append, args=("f:3", {"kind": "final"})).start()
        assert kinds(other.read("f:3", after=last, timeout=3)) == ["final"]
        wait_for(lambda: kinds(other.read("f:3")) == ["final"])  # compacted
    finally:
        other.close()


def test_without_dump_and_restore_the_log_is_still_cut_to_its_end():
    """A service that refuses DUMP (or RESTORE): the nodes before the final event's are trimmed instead."""
    with RedisServer(arguments=("--rename-command", "DUMP", "")) as server:
        live = open_live(server.url)
        live.compactor.delay = 0
        try:
            ids = log_a_reply(live, "n:1")
            compacted(server, "n:1")
            assert [event_id for event_id, _ in live.read("n:1")] == [ids["final"], ids["title"], ids["done"]]
            assert log_bytes(server, "n:1") <= 8 * 1024  # the final event's node: 4 KB or a little more
        finally:
            live.close()


def test_a_full_redis_cuts_the_log_to_its_last_event_says_so_and_fits_the_end():
    with RedisServer(arguments=("--maxmemory-policy", "noeviction")) as server:
        live, client = open_live(server.url), server.client()
        live.compactor.delay = 0
        try:
            live.start("m:1")
            logged = [live.append("m:1", {"kind": "render", "patch": PATCH * 16}) for _ in range(40)]
            client.config_set("maxmemory", client.info("memory")["used_memory"] + 512 * 1024)
            fillers = fill_redis(client)
            with pytest.raises(LiveFull):
                while True:
                    logged.append(live.append("m:1", {"kind": "render", "patch": PATCH * 16}))
            assert live.last("m:1")[0] == logged[-1], "the log is cut to its last event, still the job's"
            assert kinds(live.read("m:1", after=logged[0])) == ["render"]
            final = live.append("m:1", {"kind": "final"})  # fits in what the cut freed
            assert live.read("m:1", after=logged[-1]) == [(final, {"kind": "final"})]
            client.delete(*fillers)
            log_a_reply(live, "m:2", patches=10)  # memory freed: the next reply is whole, and compacted
            compacted(server, "m:2")
            assert kinds(live.read("m:2")) == ["final", "title", "done"]
        finally:
            client.close()
            live.close()


def test_a_full_redis_that_has_no_room_even_for_the_end_empties_the_log():
    """Its readers then find the log empty, and take the reply from storage."""
    with RedisServer(arguments=("--maxmemory-policy", "noeviction")) as server:
        live, client = open_live(server.url), server.client()
        try:
            live.start("e:1")
            live.append("e:1", {"kind": "render", "patch": PATCH})
            client.config_set("maxmemory", client.info("memory")["used_memory"] + 256 * 1024)
            fill_redis(client)
            with pytest.raises(LiveFull):
                live.append("e:1", {"kind": "final", "padding": "x" * 8192})
            assert live.last("e:1") is None
        finally:
            client.close()
            live.close()
