"""What a process and a day can give: open event streams (each holds a thread) and the model's tokens.

Found in a review as an attacker would try it (issue 16): streams from a few addresses took every thread
of a process, fresh guest cookies escaped the daily token budget, and a reply held its user's slot while
its conversation's title was being made.
"""

import runpy
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from chatbot import config
from chatbot.replies import reply_key
from support import (
    HTMX,
    ROOT,
    BlockingLLM,
    FakeModelServer,
    FakeSlowLLM,
    Gunicorn,
    HttpChat,
    LiveServer,
    SlowTitleLLM,
    start_conversation,
    stored_conversations,
    stream_url,
)


def wait_until(condition, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# Open streams in a process ------------------------------------------------------------------------


def test_streams_past_the_process_cap_are_refused_at_once_while_pages_answer(make_app):
    app = make_app(MAX_OPEN_STREAMS_PER_PROCESS=2, MAX_REPLIES_AT_ONCE=5, WTF_CSRF_ENABLED=True)
    # A FAKE model writing a piece every 50 ms for 100 s: the test is about open streams.
    app.extensions["llm"] = FakeSlowLLM(["word "] * 2000, interval=0.05)
    with LiveServer(app) as server:  # over HTTP: each stream is served by a thread of its own, as in production
        first, second = HttpChat(server.url), HttpChat(server.url)  # two users, neither at a cap of their own
        cid, mid = first.start("Write forever.")
        other_cid, other_mid = second.start("Write forever too.")
        held = [first.stream(cid, mid), second.stream(other_cid, other_mid)]
        begun = time.monotonic()
        with pytest.raises(requests.HTTPError) as refused:
            second.stream(other_cid, other_mid, timeout=10)
        assert time.monotonic() - begun < 5, "a refusal must not wait"
        assert refused.value.response.status_code == 503 and int(refused.value.response.headers["Retry-After"]) > 0
        assert requests.get(server.url + "/healthz", timeout=10).status_code == 200
        assert second.page(other_cid).status_code == 200
        held[0].close()  # a tab closed: its thread is free for a stream again
        wait_until(lambda: _opens(second, other_cid, other_mid), seconds=10)
        for response in held:
            response.close()
        first.stop(cid, mid)
        second.stop(other_cid, other_mid)


def _opens(chat, cid, mid):
    try:
        chat.stream(cid, mid, timeout=10).close()
    except requests.HTTPError:
        return False
    return True


def test_a_form_post_without_javascript_does_not_wait_for_its_reply_when_the_process_is_full(make_app):
    """Waiting for the reply holds a thread as a stream does: at the cap, the conversation is shown at once."""
    app = make_app(MAX_OPEN_STREAMS_PER_PROCESS=1, MAX_REPLIES_AT_ONCE=5)
    model = app.extensions["llm"] = BlockingLLM()
    client = app.test_client()
    try:
        cid, mid = start_conversation(client)
        held = client.get(stream_url(cid, mid), buffered=False)  # counted from here until it is closed
        begun = time.monotonic()
        response = client.post("/new", data={"text": "no JavaScript here"})
        assert response.status_code == 303 and time.monotonic() - begun < 5
        held.close()
    finally:
        model.release.set()


@pytest.mark.gunicorn
def test_under_gunicorn_streams_at_the_cap_leave_threads_for_pages_health_checks_and_log_in(tmp_path):
    # A FAKE model: 2,000 pieces, one every 50 ms (a reply that outlasts the test).
    with FakeModelServer(pieces=["word "] * 2000, interval=0.05) as model:
        settings = {
            "SECRET_KEY": secrets.token_hex(32),
            "STORAGE_URL": f"file://{tmp_path}/data",
            "LLM_BACKEND": "huggingface",
            "HF_BASE_URL": model.url,
            "CHATBOT_MODELS": "fake-model",
            "GUNICORN_THREADS": "4",
            "MAX_OPEN_STREAMS_PER_PROCESS": "2",
            "GRACEFUL_TIMEOUT": "5",
        }
        with Gunicorn(settings) as server:
            chat = HttpChat(server.url)
            cid, mid = chat.start("Write forever.")
            held = [chat.stream(cid, mid, timeout=10) for _ in range(2)]
            # Each of these would hold one of the last two threads for as long as the reply lasts.
            url = server.url + stream_url(cid, mid)
            held += [chat.session.get(url, stream=True, timeout=10) for _ in range(3)]
            assert [response.status_code for response in held[2:]] == [503, 503, 503]
            assert requests.get(server.url + "/healthz", timeout=10).status_code == 200
            assert requests.get(server.url + "/auth/login", timeout=10).status_code == 200
            assert chat.page(cid).status_code == 200
            chat.stop(cid, mid)
            for response in held:
                response.close()


def test_the_process_cap_defaults_below_the_thread_count_gunicorn_uses(monkeypatch):
    gunicorn_threads = runpy.run_path(str(ROOT / "gunicorn.conf.py"))["threads"]
    settings = config.from_environment()
    assert settings["GUNICORN_THREADS"] == gunicorn_threads  # one default, read by both
    assert 0 < settings["MAX_OPEN_STREAMS_PER_PROCESS"] <= gunicorn_threads * 0.8
    monkeypatch.setenv("GUNICORN_THREADS", "10")
    assert config.from_environment()["MAX_OPEN_STREAMS_PER_PROCESS"] == 8


@pytest.mark.parametrize("cap", [0, 8, 9])
def test_a_process_cap_that_leaves_no_thread_free_is_refused_at_start_up(make_app, cap):
    with pytest.raises(config.ConfigError, match="MAX_OPEN_STREAMS_PER_PROCESS"):
        make_app(GUNICORN_THREADS=8, MAX_OPEN_STREAMS_PER_PROCESS=cap)


# The daily token budget -----------------------------------------------------------------------------


def test_the_daily_token_budget_holds_per_address_for_fresh_guests(make_app):
    app = make_app(DAILY_TOKEN_BUDGET=100, DAILY_TOKEN_BUDGET_PER_IP=8)  # FakeLLM writes 5 pieces a reply
    for _ in range(2):  # two guests: 5, then 10 pieces from this address (a reply may overrun the budget once)
        assert app.test_client().post("/new", data={"text": "hello"}, headers=HTMX).status_code == 200
        app.extensions["replies"].wait_for_jobs(10)
    for _ in range(3):  # each a fresh cookie, from the same address
        refused = app.test_client().post("/new", data={"text": "one more"}, headers=HTMX)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        assert refused.headers["HX-Retarget"] == "#composer-error" and "your network" in refused.text
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "192.0.2.7"  # another address has its own budget
    assert elsewhere.post("/new", data={"text": "hello"}, headers=HTMX).status_code == 200


def send_at_once(app, count, address):
    """count fresh guests (a new cookie each) from one address send a first message at the same moment;
    return the answers in order."""

    def send(number):
        guest = app.test_client()
        guest.environ_base["REMOTE_ADDR"] = address
        return guest.post("/new", data={"text": f"message {number}"}, headers=HTMX)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(send, range(count)))


def refused_in_the_composer(response, words):
    """The 429 an htmx send gets: said above the composer (which keeps the text), with a Retry-After."""
    return (
        response.status_code == 429
        and int(response.headers["Retry-After"]) > 0
        and response.headers["HX-Retarget"] == "#composer-error"
        and words in response.text
    )


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_fresh_guests_from_one_address_have_at_most_its_replies_at_once(make_app, request, backend):
    """Reply slots are per user, and a new cookie is a new user: the address has a cap of its own, or every
    reply started before the first one ends would pass the address's token budget."""
    shared = {"REDIS_URL": request.getfixturevalue("redis_server").url} if backend == "redis" else {}
    app = make_app(MAX_REPLIES_AT_ONCE=1, MAX_REPLIES_AT_ONCE_PER_IP=3, **shared)
    model = app.extensions["llm"] = BlockingLLM()  # every reply waits: they all run at once
    address = f"198.51.100.{secrets.randbelow(250) + 1}"  # its own counters in the session's Redis
    try:
        answers = send_at_once(app, 20, address)
        assert sorted(response.status_code for response in answers) == [200] * 3 + [429] * 17
        refused = [response for response in answers if response.status_code == 429]
        assert all(refused_in_the_composer(response, "your network") for response in refused)
        without_javascript = app.test_client()
        without_javascript.environ_base["REMOTE_ADDR"] = address
        page = without_javascript.post("/new", data={"text": "kept for later"})
        assert page.status_code == 429 and ">kept for later</textarea>" in page.text
        elsewhere = app.test_client()
        elsewhere.environ_base["REMOTE_ADDR"] = "192.0.2.9"  # another address has slots of its own
        assert elsewhere.post("/new", data={"text": "hello"}, headers=HTMX).status_code == 200
    finally:
        model.release.set()
    app.extensions["replies"].wait_for_jobs(30)
    assert [response.status_code for response in send_at_once(app, 3, address)] == [200] * 3  # given back


def test_replies_at_once_per_address_default_to_three_times_those_per_user(make_app, monkeypatch):
    monkeypatch.setenv("MAX_REPLIES_AT_ONCE", "4")
    assert make_app().extensions["reply_slots"].limit_per_ip == 12
    assert make_app(MAX_REPLIES_AT_ONCE=1).config["MAX_REPLIES_AT_ONCE_PER_IP"] == 3
    monkeypatch.setenv("MAX_REPLIES_AT_ONCE_PER_IP", "5")
    assert make_app().extensions["reply_slots"].limit_per_ip == 5


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_replies_started_at_once_cannot_overrun_the_address_budget_by_more_than_one_reply(make_app, request, backend):
    """Each reply being written may still take MAX_TOKENS: a new one starts only while the budget has room
    for them all, so replies asked for at once overrun the address's budget by one reply at most."""
    shared = {"REDIS_URL": request.getfixturevalue("redis_server").url} if backend == "redis" else {}
    app = make_app(MAX_TOKENS=100, DAILY_TOKEN_BUDGET_PER_IP=250, MAX_REPLIES_AT_ONCE_PER_IP=10, **shared)
    model = app.extensions["llm"] = BlockingLLM()
    model.pieces = ["word "] * 100  # a FAKE model writing replies of MAX_TOKENS pieces
    address = f"203.0.113.{secrets.randbelow(250) + 1}"  # its own counters in the session's Redis
    try:
        answers = send_at_once(app, 20, address)
        assert sorted(response.status_code for response in answers) == [200] * 3 + [429] * 17  # 250 > 2 x 100
        refused = [response for response in answers if response.status_code == 429]
        assert all(refused_in_the_composer(response, "being written") for response in refused)
    finally:
        model.release.set()
    app.extensions["replies"].wait_for_jobs(30)
    spent = send_at_once(app, 1, address)[0]  # 300 pieces against 250: the day's budget is used
    assert refused_in_the_composer(spent, "your network has used")


def test_a_users_replies_at_once_cannot_overrun_their_budget_by_more_than_one_reply(make_app):
    app = make_app(MAX_TOKENS=100, DAILY_TOKEN_BUDGET=100, MAX_REPLIES_AT_ONCE=2)
    model = app.extensions["llm"] = BlockingLLM()
    client = app.test_client()
    try:
        start_conversation(client, "one")
        refused = client.post("/new", data={"text": "two"}, headers=HTMX)  # the first may still take 100
        assert refused_in_the_composer(refused, "being written")
    finally:
        model.release.set()
    app.extensions["replies"].wait_for_jobs(30)
    assert client.post("/new", data={"text": "two"}, headers=HTMX).status_code == 200  # 5 of 100 were used


# A reply's slot and its title ------------------------------------------------------------------------


def reply_shown_as_finished(app, cid, mid):
    """True once the reply's log has its final event: a page has the finished reply, and may Retry."""
    return "final" in [event["kind"] for _, event in app.extensions["live"].read(reply_key(cid, mid))]


def test_a_reply_gives_its_slot_back_when_it_ends_not_after_the_title(make_app):
    app = make_app(MAX_REPLIES_AT_ONCE=1)
    model = app.extensions["llm"] = SlowTitleLLM()
    client = app.test_client()
    cid, mid = start_conversation(client, "one")
    try:
        wait_until(lambda: reply_shown_as_finished(app, cid, mid))  # the title is still being made
        assert client.post(f"/c/{cid}/messages", data={"text": "two"}, headers=HTMX).status_code == 200
    finally:
        model.release.set()


def test_a_reply_is_charged_to_the_budget_when_it_ends_not_after_the_title(make_app):
    app = make_app(DAILY_TOKEN_BUDGET=5, MAX_REPLIES_AT_ONCE=5)  # SlowTitleLLM writes 5 pieces a reply
    model = app.extensions["llm"] = SlowTitleLLM()
    client = app.test_client()
    cid, mid = start_conversation(client, "one")
    try:
        wait_until(lambda: reply_shown_as_finished(app, cid, mid))
        refused = client.post(f"/c/{cid}/messages", data={"text": "two"}, headers=HTMX)
        assert refused.status_code == 429 and "allowance" in refused.text
    finally:
        model.release.set()


def test_a_regenerated_reply_is_not_ended_by_the_title_of_the_one_it_replaces(make_app):
    """Regenerate pressed while the old reply's title is being made: the old job's title and end must not
    land in the new reply's log, where they would end its streams while it is still being written."""
    app = make_app(MAX_REPLIES_AT_ONCE=1)
    old_model = app.extensions["llm"] = SlowTitleLLM()
    client = app.test_client()
    cid, mid = start_conversation(client, "one")
    new_model = BlockingLLM()
    try:
        wait_until(lambda: reply_shown_as_finished(app, cid, mid))
        app.extensions["llm"] = new_model
        assert client.post(f"/c/{cid}/messages/{mid}/regenerate", headers=HTMX).status_code == 200
        old_model.release.set()  # the old job logs what it still has, if anything
        wait_until(lambda: app.extensions["replies"].running() == 1)  # the old job is over; the new one waits
        # Regenerate adds a sibling reply (a new version) and shows it: its log holds its own start alone.
        new_mid = stored_conversations(app)[0]["current"]
        assert new_mid != mid
        assert [event["kind"] for _, event in app.extensions["live"].read(reply_key(cid, new_mid))] == ["started"]
    finally:
        old_model.release.set()
        new_model.release.set()
