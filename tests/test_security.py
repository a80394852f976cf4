"""Abuse, as an outsider would try it, through the test client: limits, log-in, redirects, sessions, HTTPS."""

import json
import secrets
import statistics
import time
from urllib.parse import urlsplit

import pytest

from chatbot import keys
from chatbot.config import ConfigError
from chatbot.llm import Unavailable
from chatbot.render import render_markdown
from support import (
    HTMX,
    TEST_SETTINGS,
    BlockingLLM,
    FakeLLM,
    RedisServer,
    build_app,
    guest_uid,
    start_conversation,
)

PASSWORD = "correct horse"
MODEL = FakeLLM().models[0]


def sign_up(client, username="alice", password=PASSWORD):
    return client.post("/auth/register", data={"username": username, "password": password})


def log_in(client, username="alice", password=PASSWORD, query=""):
    return client.post(f"/auth/login{query}", data={"username": username, "password": password})


def log_in_when_allowed(client, password, seconds=10):
    """Log in as soon as the back-off lets the attempt through (a refused attempt counts no failure)."""
    deadline = time.monotonic() + seconds
    while (response := log_in(client, password=password)).status_code == 429:
        assert time.monotonic() < deadline, "the log-in back-off never ended"
        time.sleep(0.05)
    return response


def retry_after(response):
    assert response.status_code == 429
    seconds = int(response.headers["Retry-After"])
    assert seconds >= 1
    return seconds


# Rate limits ---------------------------------------------------------------------------------------


def test_a_flood_of_messages_gets_429_in_the_composer_and_the_text_is_kept(make_app):
    client = make_app(MESSAGE_LIMIT="3 per minute", MAX_REPLIES_AT_ONCE=10).test_client()
    cid, _ = start_conversation(client, "one")
    for text in ("two", "three"):
        assert client.post(f"/c/{cid}/messages", data={"text": text}, headers=HTMX).status_code == 200
    refused = client.post(f"/c/{cid}/messages", data={"text": "four, kept"}, headers=HTMX)
    assert 1 <= retry_after(refused) <= 61
    # htmx puts the answer in the composer's error slot; the textarea (and its text) is not swapped.
    assert refused.headers["HX-Retarget"] == "#composer-error"
    assert "Your message was not sent" in refused.text and "retry in" in refused.text
    assert "four, kept" not in [message["content"] for message in _messages(client, cid)]


def test_without_javascript_the_429_page_says_when_and_keeps_the_text(make_app):
    client = make_app(MESSAGE_LIMIT="1 per minute").test_client()
    cid, _ = start_conversation(client, "one")
    refused = client.post(f"/c/{cid}/messages", data={"text": "my long thought"})
    assert retry_after(refused)
    assert "<html" in refused.text and "Please retry in" in refused.text
    assert ">my long thought</textarea>" in refused.text
    assert f'action="/c/{cid}/messages"' in refused.text


def test_without_javascript_a_refused_edit_keeps_the_text_in_a_form_that_posts_the_edit_again(make_app):
    client = make_app(MESSAGE_LIMIT="1 per minute").test_client()
    cid, _ = start_conversation(client, "one")
    _wait_for_reply(client, cid)
    user_id = _messages(client, cid)[0]["id"]
    refused = client.post(f"/c/{cid}/messages/{user_id}/edit", data={"text": "my careful rewrite", "model": MODEL})
    assert retry_after(refused) and "<html" in refused.text and "Please retry in" in refused.text
    assert ">my careful rewrite</textarea>" in refused.text and f'name="model" value="{MODEL}"' in refused.text
    assert f'action="/c/{cid}/messages/{user_id}/edit"' in refused.text and "Send again" in refused.text
    assert f'href="/c/{cid}">Back to the chat' in refused.text
    assert _messages(client, cid)[0]["content"] == "one"


def test_without_javascript_a_refused_regenerate_offers_to_try_again(make_app):
    client = make_app(MESSAGE_LIMIT="1 per minute").test_client()
    cid, mid = start_conversation(client, "one")
    _wait_for_reply(client, cid)
    refused = client.post(f"/c/{cid}/messages/{mid}/regenerate")
    assert retry_after(refused) and "<textarea" not in refused.text
    assert f'action="/c/{cid}/messages/{mid}/regenerate"' in refused.text and "Try again" in refused.text
    assert f'href="/c/{cid}">Back to the chat' in refused.text


def test_regenerate_and_edit_share_the_message_budget(make_app):
    client = make_app(MESSAGE_LIMIT="2 per minute").test_client()
    cid, mid = start_conversation(client, "one")
    _wait_for_reply(client, cid)
    assert client.post(f"/c/{cid}/messages/{mid}/regenerate", headers=HTMX).status_code == 200
    _wait_for_reply(client, cid)
    assert client.post(f"/c/{cid}/messages/{mid}/regenerate", headers=HTMX).status_code == 429


def test_a_fresh_cookie_each_time_still_meets_the_per_ip_limit(make_app):
    app = make_app(MESSAGE_LIMIT="100 per minute", MESSAGE_LIMIT_PER_IP="3 per minute")
    statuses = [app.test_client().post("/new", data={"text": "hi"}, headers=HTMX).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


def test_behind_the_router_the_client_ip_is_the_last_hop_and_cannot_be_spoofed(make_app):
    app = make_app(TRUSTED_PROXY_HOPS=1, MESSAGE_LIMIT="100 per minute", MESSAGE_LIMIT_PER_IP="2 per minute")
    router = {"REMOTE_ADDR": "10.1.2.3"}

    def post(forwarded_for):
        # Heroku's router appends the address it saw to whatever the client sent.
        return (
            app.test_client()
            .post("/new", data={"text": "hi"}, environ_base=router, headers={**HTMX, "X-Forwarded-For": forwarded_for})
            .status_code
        )

    assert [post(f"198.51.100.{n}, 203.0.113.7") for n in range(3)] == [200, 200, 429]
    assert post("203.0.113.8") == 200  # another client behind the same router has its own budget


def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(make_app):
    app = make_app(MESSAGE_LIMIT="100 per minute", MESSAGE_LIMIT_PER_IP="2 per minute")
    statuses = [
        app.test_client()
        .post("/new", data={"text": "hi"}, headers={**HTMX, "X-Forwarded-For": f"192.0.2.{n}"})
        .status_code
        for n in range(3)
    ]
    assert statuses == [200, 200, 429]


def test_searches_are_limited(make_app):
    client = make_app(SEARCH_LIMIT="2 per minute").test_client()
    statuses = [client.get("/sidebar/search?q=moon", headers=HTMX).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    page = client.get("/sidebar/search?q=moon")
    assert retry_after(page) and "Too many searches" in page.text


def test_sign_ups_are_limited_per_ip_and_only_created_accounts_count(make_app):
    app = make_app(SIGNUP_LIMIT_PER_IP="2 per hour")
    assert sign_up(app.test_client(), "first").status_code == 302
    assert sign_up(app.test_client(), "first").status_code == 400  # taken: not counted
    assert sign_up(app.test_client(), "second").status_code == 302
    refused = sign_up(app.test_client(), "third")
    assert retry_after(refused) and "Too many accounts" in refused.text


def test_replies_at_once_are_limited_per_user(make_app):
    app = make_app(MAX_REPLIES_AT_ONCE=1)
    model = app.extensions["llm"] = BlockingLLM()
    client = app.test_client()
    cid, _ = start_conversation(client, "one")
    refused = client.post(f"/c/{cid}/messages", data={"text": "two"}, headers=HTMX)
    assert retry_after(refused) and "still being written" in refused.text
    assert client.post("/new", data={"text": "elsewhere"}, headers=HTMX).status_code == 429
    assert app.test_client().post("/new", data={"text": "another user"}, headers=HTMX).status_code == 200
    model.release.set()
    _wait_for_reply(client, cid)
    _wait_until(lambda: app.extensions["reply_slots"].in_use(guest_uid(client)) == 0)  # the job gave it back
    assert client.post(f"/c/{cid}/messages", data={"text": "two"}, headers=HTMX).status_code == 200


def test_reply_slots_expire_when_a_process_died(app):
    from chatbot import limits

    slots = app.extensions["reply_slots"]
    assert slots.claim("u" * 16, "a") == (None, {"user": 0, "ip": 0}) and not slots.full("u" * 16)
    with app.app_context():
        assert limits.get_reply_slots() is slots
    slots.backend._slots["u" * 16]["a"] -= limits.REPLY_SLOT_SECONDS + 1  # taken by a process that died long ago
    assert slots.in_use("u" * 16) == 0


# Caps ----------------------------------------------------------------------------------------------


def test_conversations_per_user_are_capped_with_a_clear_error(make_app):
    client = make_app(MAX_CONVERSATIONS=2, MAX_REPLIES_AT_ONCE=10).test_client()
    start_conversation(client, "one")
    start_conversation(client, "two")
    refused = client.post("/new", data={"text": "three"}, headers=HTMX)
    assert refused.status_code == 403 and refused.headers["HX-Retarget"] == "#composer-error"
    assert "2 conversations" in refused.text


def test_messages_per_conversation_are_capped_with_a_clear_error(make_app):
    client = make_app(MAX_MESSAGES_PER_CONVERSATION=4).test_client()
    cid, _ = start_conversation(client, "one")
    _wait_for_reply(client, cid)
    assert client.post(f"/c/{cid}/messages", data={"text": "two"}, headers=HTMX).status_code == 200
    _wait_for_reply(client, cid)
    refused = client.post(f"/c/{cid}/messages", data={"text": "three"}, headers=HTMX)
    assert refused.status_code == 403 and "new chat" in refused.text.lower()


def test_without_javascript_a_full_conversation_keeps_the_text_to_send_in_a_new_chat(make_app):
    client = make_app(MAX_MESSAGES_PER_CONVERSATION=2).test_client()
    cid, _ = start_conversation(client, "one")
    _wait_for_reply(client, cid)
    refused = client.post(f"/c/{cid}/messages", data={"text": "the next thought", "model": MODEL})
    assert refused.status_code == 403 and "<html" in refused.text and ">the next thought</textarea>" in refused.text
    assert 'action="/new"' in refused.text and "Send in a new chat" in refused.text


def test_an_id_with_a_trailing_newline_is_404_not_500(client):
    cid, _ = start_conversation(client)
    assert client.get(f"/c/{cid}%0A").status_code == 404
    assert client.get(f"/sidebar/{cid}%0A").status_code == 404


# Log-in ---------------------------------------------------------------------------------------------


def test_login_brute_force_slows_down(make_app):
    app = make_app(LOGIN_FREE_FAILURES=2, LOGIN_MAX_BACKOFF=60)
    sign_up(app.test_client())
    attacker = app.test_client()
    assert [log_in(attacker, password=f"guess {n}").status_code for n in range(2)] == [400, 400]
    assert log_in(attacker, password="guess 2").status_code == 400  # the third failure sets a wait of 1 s
    refused = log_in(attacker, password="guess 3")
    assert "Too many failed log-ins" in refused.text
    first_wait = retry_after(refused)
    # Once the wait is over the guess is tried, and fails: the fourth failure sets a longer wait.
    assert log_in_when_allowed(attacker, password="guess 3").status_code == 400
    refused = log_in(attacker, password="guess 4")
    assert "Too many failed log-ins" in refused.text
    assert retry_after(refused) > first_wait, "each failure doubles the wait"
    # While a wait runs, even the right password is not tried: guessing gains nothing.
    assert log_in(app.test_client(), password=PASSWORD).status_code == 429


def test_login_failures_from_one_address_slow_down_every_username(make_app):
    app = make_app(LOGIN_FREE_FAILURES=2, LOGIN_MAX_BACKOFF=60)
    client = app.test_client()
    statuses = [log_in(client, username=f"user{n}", password="guess").status_code for n in range(4)]
    assert statuses == [400, 400, 400, 429]


def test_login_takes_as_long_for_an_unknown_username(make_app):
    app = make_app(LOGIN_FREE_FAILURES=1000)
    sign_up(app.test_client())
    client = app.test_client()
    log_in(client, "nobody", "warm up")  # the first unknown name pays for making the dummy hash
    known, unknown = [], []
    for _ in range(11):
        for username, times in (("alice", known), ("nobody", unknown)):
            start = time.perf_counter()
            assert log_in(client, username, "wrong password").status_code == 400
            times.append(time.perf_counter() - start)
    known_median, unknown_median = statistics.median(known), statistics.median(unknown)
    assert abs(known_median - unknown_median) <= 0.2 * max(known_median, unknown_median), (known, unknown)


OPEN_REDIRECTS = [
    "/%09/evil.example",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "/%5Cevil.example",
    "%5C%5Cevil.example",
    "/%5C/evil.example",
    "/%2F/evil.example",
    "https://evil.example/",
    "https:evil.example",
    "javascript:alert(1)",
    "/%0A/evil.example",
    "/%0D%0ALocation:%20https://evil.example",
    "/%00//evil.example",
    "%20//evil.example",
]


@pytest.mark.parametrize("target", OPEN_REDIRECTS)
def test_login_redirects_only_to_this_site(make_app, target):
    app = make_app()
    sign_up(app.test_client())
    response = log_in(app.test_client(), query=f"?next={target}")
    assert response.status_code == 302
    location = response.headers["Location"]
    parts = urlsplit(location.replace("\\", "/"))
    assert not parts.scheme and not parts.netloc and location.startswith("/"), location
    assert not location.startswith("//") and "\t" not in location and "\n" not in location


def test_login_keeps_a_local_next(make_app):
    app = make_app()
    sign_up(app.test_client())
    assert (
        log_in(app.test_client(), query="?next=/sidebar/search%3Fq%3Dmoon").headers["Location"]
        == "/sidebar/search?q=moon"
    )


def test_passwords_have_a_minimum_and_a_maximum_length(client):
    assert "at least 8" in sign_up(client, password="short").text
    too_long = sign_up(client, password="x" * 129)
    assert too_long.status_code == 400 and "at most 128" in too_long.text
    assert log_in(client, password="x" * 100_000).status_code == 400


# Sessions -------------------------------------------------------------------------------------------


def _session_cookie(client):
    return client.get_cookie("session").value


def test_a_planted_guest_cookie_reads_nothing_after_sign_up(app):
    victim = app.test_client()
    cid, _ = start_conversation(victim, "my secret plans")
    planted = _session_cookie(victim)  # what an attacker set in the victim's browser, and kept a copy of
    assert sign_up(victim).status_code == 302
    assert "my secret plans" in victim.get(f"/c/{cid}").text  # the account has the guest's conversations

    attacker = app.test_client()
    attacker.set_cookie("session", planted)
    assert attacker.get(f"/c/{cid}").status_code == 404
    assert "my secret plans" not in attacker.get("/").text
    assert "my secret plans" not in attacker.get("/sidebar/search?q=secret").text


def test_sign_up_is_refused_while_logged_in(client):
    sign_up(client)
    again = sign_up(client, "bob")
    assert again.status_code == 400 and "signed in already" in again.text
    assert log_in(client.application.test_client(), "bob").status_code == 400


def test_the_session_is_cleared_and_reissued_at_login_sign_up_and_logout(app):
    client = app.test_client()
    client.get("/")
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
        guest = session["guest_uid"]
    sign_up(client)
    with client.session_transaction() as session:
        assert "planted" not in session and "guest_uid" not in session
        session["planted"] = "again"
    client.post("/auth/logout")
    with client.session_transaction() as session:
        assert "planted" not in session and "_user_id" not in session
        session["planted"] = "and again"
    log_in(client)
    with client.session_transaction() as session:
        assert "planted" not in session and session.get("guest_uid") != guest


def test_log_out_everywhere_ends_every_session_and_remember_me_cookie(app):
    sign_up(app.test_client())
    first, second = app.test_client(), app.test_client()
    log_in(first)
    log_in(second)
    remembered = app.test_client()
    remembered.set_cookie("remember_token", first.get_cookie("remember_token").value)
    assert "alice" in second.get("/new").text and "alice" in remembered.get("/new").text

    response = first.post("/auth/logout-everywhere")
    assert response.status_code == 302
    assert "alice" not in first.get("/new").text
    assert "alice" not in second.get("/new").text
    stale = app.test_client()
    stale.set_cookie("remember_token", remembered.get_cookie("remember_token").value)
    assert "alice" not in stale.get("/new").text
    assert log_in(app.test_client()).status_code == 302  # logging in again works


def test_log_out_ends_that_session_and_every_copy_of_its_cookies(app):
    sign_up(app.test_client())
    browser, elsewhere = app.test_client(), app.test_client()
    log_in(browser)
    log_in(elsewhere)
    copied = {name: browser.get_cookie(name).value for name in ("session", "remember_token")}
    assert browser.post("/auth/logout").status_code == 302

    for names in (["session"], ["remember_token"], ["session", "remember_token"]):
        replay = app.test_client()
        for name in names:
            replay.set_cookie(name, copied[name])
        assert "alice" not in replay.get("/new").text, f"a copy of {names} still signs in"
        assert replay.get_cookie("remember_token") is None  # refused once, then forgotten by the browser
    assert "alice" in elsewhere.get("/new").text  # the account's other sign-ins go on


def test_a_sign_in_through_another_process_is_recognised_at_once(tmp_path):
    """Processes cache an account's sessions; one they have not seen yet is looked up, not refused."""
    first, second = (build_app(tmp_path / "shared", FakeLLM(), SESSION_CHECK_SECONDS=3600) for _ in range(2))
    sign_up(first.test_client())
    early = second.test_client()
    log_in(early)  # the second process reads the account, and keeps what it read for an hour
    later = first.test_client()
    log_in(later)
    moved = second.test_client()
    moved.set_cookie("session", later.get_cookie("session").value)
    assert "alice" in moved.get("/new").text and "alice" in early.get("/new").text


def two_processes(tmp_path, redis_url):
    """Two apps as two processes of one deployment: one store folder, one Redis. Each keeps what it reads
    of an account's sessions for an hour, so only what Redis tells it can make it read them again."""
    settings = {"REDIS_URL": redis_url, "SESSION_CHECK_SECONDS": 3600, "SIGNUP_LIMIT_PER_IP": "100 per hour"}
    return [build_app(tmp_path / "shared", FakeLLM(), **settings) for _ in range(2)]


COOKIE_COPIES = (["session"], ["remember_token"], ["session", "remember_token"])


def signs_in(app, cookies, names, username):
    """Whether a browser holding copies of these of the cookies is signed in as username on app."""
    replay = app.test_client()
    for name in names:
        replay.set_cookie(name, cookies[name])
    return username in replay.get("/new").text


def signed_in_copied(app, username):
    """A browser signed in as username on app, and copies of its session and remember-me cookies."""
    browser = app.test_client()
    assert log_in(browser, username).status_code == 302
    return browser, {name: browser.get_cookie(name).value for name in ("session", "remember_token")}


@pytest.mark.redis
@pytest.mark.parametrize("action", ["logout", "logout-everywhere", "delete"])
def test_a_log_out_through_one_process_reaches_the_others_at_once(tmp_path, redis_server, action):
    first, second = two_processes(tmp_path, redis_server.url)
    username = f"alice-{secrets.token_hex(4)}"  # the session's Redis is shared with other tests
    sign_up(first.test_client(), username)
    browser, copied = signed_in_copied(first, username)
    elsewhere, _ = signed_in_copied(second, username)  # another sign-in of the account
    assert all(signs_in(second, copied, names, username) for names in COOKIE_COPIES)  # read, kept an hour

    if action == "delete":
        assert browser.post("/account/delete", data={"password": PASSWORD}).status_code == 302
    else:
        assert browser.post(f"/auth/{action}").status_code == 302

    for names in COOKIE_COPIES:
        assert not signs_in(second, copied, names, username), f"a copy of {names} still signs in on the other"
    assert (username in elsewhere.get("/new").text) == (action == "logout")  # only that sign-in ended


@pytest.mark.redis
def test_while_redis_is_down_a_process_checks_sessions_in_storage(tmp_path):
    with RedisServer() as redis_server:  # its own: this test stops it
        first, second = two_processes(tmp_path, redis_server.url)
        sign_up(first.test_client())
        browser, copied = signed_in_copied(first, "alice")
        _, other = signed_in_copied(first, "alice")
        assert signs_in(second, copied, ["session"], "alice") and signs_in(second, other, ["session"], "alice")
        redis_server.kill()
        assert browser.post("/auth/logout").status_code == 302  # the log-out itself is stored
        assert not signs_in(second, copied, ["session"], "alice")
        assert signs_in(second, other, ["session"], "alice")  # read from storage: still signed in


def test_the_account_keeps_only_its_newest_sessions(make_app, monkeypatch):
    monkeypatch.setattr("chatbot.accounts.SESSIONS_KEPT", 2)
    app = make_app()
    sign_up(app.test_client())
    oldest, middle, newest = app.test_client(), app.test_client(), app.test_client()
    for client in (oldest, middle, newest):
        log_in(client)
    assert ["alice" in client.get("/new").text for client in (oldest, middle, newest)] == [False, True, True]
    stored = json.loads(app.extensions["store"].read(keys.account("alice"))[0])
    assert len(stored["sessions"]) == 2


def test_remember_me_cookie_is_httponly_samesite_and_secure_only_over_https(make_app):
    app = make_app(TRUSTED_PROXY_HOPS=1)
    sign_up(app.test_client())
    over_http = log_in(app.test_client()).headers.getlist("Set-Cookie")
    remember = next(cookie for cookie in over_http if cookie.startswith("remember_token="))
    assert "HttpOnly" in remember and "SameSite=Lax" in remember and "Secure" not in remember

    https = app.test_client()
    over_https = https.post(
        "/auth/login", data={"username": "alice", "password": PASSWORD}, headers={"X-Forwarded-Proto": "https"}
    ).headers.getlist("Set-Cookie")
    assert all("; Secure" in cookie for cookie in over_https) and len(over_https) >= 2


# HTTPS ------------------------------------------------------------------------------------------------


def test_over_https_behind_the_router_hsts_and_secure_cookies(make_app):
    client = make_app(TRUSTED_PROXY_HOPS=1).test_client()
    response = client.get("/new", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "; Secure" in response.headers["Set-Cookie"]


def test_plain_http_through_the_router_is_sent_to_https(make_app):
    client = make_app(TRUSTED_PROXY_HOPS=1).test_client()
    response = client.post("/new?x=1", headers={"X-Forwarded-Proto": "http", "Host": "chat.example"})
    assert response.status_code == 308
    assert response.headers["Location"] == "https://chat.example/new?x=1"


def test_local_http_keeps_working_and_a_spoofed_proto_is_ignored(client):
    response = client.get("/new", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response.headers
    assert "Secure" not in response.headers["Set-Cookie"]


def test_force_https_redirects_and_marks_cookies_secure(make_app):
    app = make_app(FORCE_HTTPS=True)
    assert app.test_client().get("/new").status_code == 308
    response = app.test_client().get("/new", base_url="https://localhost")
    assert response.status_code == 200 and "; Secure" in response.headers["Set-Cookie"]


def test_production_needs_a_secret_key_of_32_characters(tmp_path):
    settings = {**TEST_SETTINGS, "TESTING": False, "STORAGE_URL": f"file://{tmp_path}"}
    with pytest.raises(ConfigError, match="at least 32"):
        build_app(tmp_path, FakeLLM(), **settings, SECRET_KEY="short-but-not-the-default")
    assert build_app(tmp_path, FakeLLM(), **settings, SECRET_KEY="k" * 32).config["SECRET_KEY"] == "k" * 32


# Smaller findings -----------------------------------------------------------------------------------


def test_rendered_markdown_keeps_only_known_classes():
    html = render_markdown(
        '```python\nx = 1\n```\n\n<div class="copy-code visually-hidden">Copy code</div>'
        '<span class="k bubble">x</span><code class="language-js">y</code>'
    )
    assert 'class="language-python highlight"' in html and 'class="n"' in html
    assert "copy-code" not in html and "visually-hidden" not in html and "bubble" not in html
    assert '<code class="language-js">' in html


class FailingLLM(FakeLLM):
    """A FAKE model that fails the way an unreachable server does."""

    def stream(self, messages, model=None, **params):
        raise Unavailable("connection refused by 127.0.0.1:9")
        yield  # a generator, like the real backends


def test_model_errors_are_logged_without_the_users_words(app, caplog):
    app.extensions["llm"] = FailingLLM()
    client = app.test_client()
    cid, _ = start_conversation(client, "my very private question")
    _wait_for_reply(client, cid)
    records = [record for record in caplog.records if record.name.startswith("chatbot")]
    assert any("Unavailable" in record.getMessage() for record in records)
    assert not any("private question" in record.getMessage() for record in records)


def _messages(client, cid):
    response = client.get(f"/c/{cid}/export.json")
    return response.get_json()["messages"]


def _wait_until(condition, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _wait_for_reply(client, cid):
    """Until the conversation's last reply has finished (the job runs in its own thread)."""
    _wait_until(lambda: _messages(client, cid)[-1]["status"] not in ("pending", "streaming"))


def test_a_daily_token_budget_refuses_replies_once_spent_and_keeps_the_text(make_app):
    app = make_app(DAILY_TOKEN_BUDGET=8, MESSAGE_LIMIT="100 per minute")  # FakeLLM writes 5 pieces a reply
    client = app.test_client()
    for _ in range(2):  # 5, then 10 pieces: the second reply may overrun the budget once
        assert client.post("/new", data={"text": "hello"}, headers=HTMX).status_code == 200
        app.extensions["replies"].wait_for_jobs(10)
    refused = client.post("/new", data={"text": "one more"}, headers=HTMX)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert refused.headers["HX-Retarget"] == "#composer-error" and "allowance" in refused.text
    other = app.test_client()  # another user's budget is their own
    assert other.post("/new", data={"text": "hello"}, headers=HTMX).status_code == 200


def test_with_rate_limits_off_the_app_starts_and_replies(make_app):
    app = make_app(RATELIMIT_ENABLED=False)
    client = app.test_client()
    assert client.post("/new", data={"text": "hello"}, headers=HTMX).status_code == 200
    app.extensions["replies"].wait_for_jobs(10)
