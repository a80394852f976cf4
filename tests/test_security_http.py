"""The limits over real HTTP: two gunicorn instances sharing the tests' real Redis, and the 429 in Chromium."""

import secrets

import pytest
import requests
from playwright.sync_api import expect

from support import FakeModelServer, Gunicorn, HttpChat, LiveServer, close_page, open_page


@pytest.fixture(scope="module")
def fake_model():
    """A FAKE OpenAI-compatible model: short replies, so that reply slots free up quickly."""
    with FakeModelServer(pieces=["short ", "reply"], interval=0.01) as server:
        yield server


def shared_settings(tmp_path, redis_server, fake_model, **settings):
    """The environment of two gunicorn instances of one deployment (one process each) sharing the store and
    the Redis, with the fake model; plus `settings`."""
    return {
        "SECRET_KEY": secrets.token_hex(32),
        "STORAGE_URL": f"file://{tmp_path}/data",
        "REDIS_URL": redis_server.url,
        "LLM_BACKEND": "huggingface",
        "HF_BASE_URL": fake_model.url,
        "CHATBOT_MODELS": "fake-model",
        "WEB_CONCURRENCY": "1",
        **settings,
    }


@pytest.mark.redis
@pytest.mark.gunicorn
def test_limits_hold_across_two_gunicorn_instances_sharing_redis(tmp_path, redis_server, fake_model):
    settings = shared_settings(
        tmp_path,
        redis_server,
        fake_model,
        MESSAGE_LIMIT="4 per minute",
        MESSAGE_LIMIT_PER_IP="6 per 2 minutes",  # a longer window: checked after the per-user one
        MAX_REPLIES_AT_ONCE="10",
    )
    with Gunicorn(settings) as first, Gunicorn(settings) as second:
        chat = HttpChat(first.url)
        cid, _ = chat.start("one")
        headers = {"HX-Request": "true", "X-CSRFToken": chat.token}
        statuses = []
        for number, server in enumerate([second, first, second, first]):
            response = chat.session.post(
                f"{server.url}/c/{cid}/messages", data={"text": f"message {number}"}, headers=headers, timeout=30
            )
            statuses.append(response.status_code)
        assert statuses == [200, 200, 200, 429], "one user's budget is shared by both instances"
        assert int(response.headers["Retry-After"]) >= 1
        assert response.headers["HX-Retarget"] == "#composer-error"

        # A new guest (no cookie) from the same address meets the per-IP budget, wherever it lands.
        fresh = [HttpChat(server.url) for server in (first, second, first)]
        outcomes = []
        for other in fresh:
            response = other.session.post(
                other.base_url + "/new",
                data={"text": "hi"},
                headers={"HX-Request": "true", "X-CSRFToken": other.token},
                timeout=30,
            )
            outcomes.append(response.status_code)
        assert outcomes == [200, 200, 429]


@pytest.mark.redis
@pytest.mark.gunicorn
def test_login_back_off_holds_across_instances(tmp_path, redis_server, fake_model):
    settings = shared_settings(tmp_path, redis_server, fake_model, LOGIN_FREE_FAILURES="2", LOGIN_MAX_BACKOFF="60")
    with Gunicorn(settings) as first, Gunicorn(settings) as second:
        statuses = []
        for server in (first, second, first, second):
            session = requests.Session()
            page = session.get(server.url + "/auth/login", timeout=10)
            token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
            response = session.post(
                server.url + "/auth/login",
                data={"username": "victim", "password": "guess", "csrf_token": token},
                allow_redirects=False,
                timeout=30,
            )
            statuses.append(response.status_code)
        assert statuses == [400, 400, 400, 429]


@pytest.mark.browser
def test_the_429_message_appears_in_the_composer_and_the_text_is_kept(browser, make_app):
    app = make_app(MESSAGE_LIMIT="1 per minute", MAX_REPLIES_AT_ONCE=10)
    with LiveServer(app) as server:
        page = open_page(browser, server.url + "/new")
        composer = page.locator('textarea[name="text"]')
        composer.fill("The first message")
        composer.press("Enter")
        expect(page.locator('[data-role="user"] .bubble')).to_have_text("The first message")
        expect(composer).to_have_value("")

        composer.fill("A second message, typed with care")
        composer.press("Enter")
        error = page.locator("#composer-error")
        expect(error).to_contain_text("Your message was not sent")
        expect(error).to_contain_text("retry in")
        expect(composer).to_have_value("A second message, typed with care")
        expect(page.locator('[data-role="user"]')).to_have_count(1)
        # Chromium reports the 429 itself as a failed resource; that one is expected.
        page.errors = [text for text in page.errors if "429" not in text]
        close_page(page)
