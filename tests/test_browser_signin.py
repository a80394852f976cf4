"""Sign in with Hugging Face in Chromium: a real OpenID Connect provider (oidc-provider-mock) plays Hugging Face,
and the FAKE model server records who pays for each reply (INFERENCE_BILLING=user or user-first)."""

import json
import re

import pytest
from playwright.sync_api import expect

from chatbot import keys
from chatbot.tokens import unseal
from support import FakeModelServer, LiveServer, close_page, send_message
from support.oidc import set_claims, sign_in_settings

pytestmark = pytest.mark.browser

PASSWORD = "a long enough password"


@pytest.fixture
def model():
    """The FAKE model server the Hugging Face backend talks to (HF_BASE_URL)."""
    with FakeModelServer(pieces=["Billed ", "reply."], interval=0) as server:
        yield server


def serve(make_app, issuer, model, billing):
    """The app, CSRF on as in production, over HTTP: a LiveServer to enter."""
    app = make_app(
        LLM_BACKEND="huggingface",
        HF_BASE_URL=model.url,
        HF_TOKEN="hf_operator_token",
        CHATBOT_MODELS=["fake-model"],
        WTF_CSRF_ENABLED=True,
        **sign_in_settings(issuer, INFERENCE_BILLING=billing),
    )
    return LiveServer(app)


@pytest.fixture
def user_pays(make_app, issuer, model):
    with serve(make_app, issuer, model, "user") as server:
        yield server


@pytest.fixture
def user_first(make_app, issuer, model):
    with serve(make_app, issuer, model, "user-first") as server:
        yield server


@pytest.fixture
def page(browser, issuer):
    """A page whose console errors are collected on the app's pages only: the provider's own pages (a mock's,
    with a stylesheet from a CDN this machine cannot reach, and no favicon) are not what is tested."""
    context = browser.new_context()
    page = context.new_page()
    page.errors = []
    page.on(
        "console",
        lambda message: (
            page.errors.append(message.text) if message.type == "error" and not page.url.startswith(issuer) else None
        ),
    )
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    close_page(page)


def at(url):
    """A pattern for expect(page).to_have_url: any address that starts with url."""
    return re.compile("^" + re.escape(url))


def authorize_at_provider(page, issuer, sub):
    """On the provider's own sign-in form (its template: a `sub` field and an Authorize button), sign in as sub."""
    expect(page).to_have_url(at(f"{issuer}/oauth2/authorize"))
    page.locator('input[name="sub"]').fill(sub)
    page.get_by_role("button", name="Authorize").click()


def stored_tokens(server):
    """The user's stored tokens, decrypted (one signed-in Hugging Face user per test), or None."""
    store = server.app.extensions["store"]
    found = list(store.keys(keys.TOKENS))
    if not found:
        return None
    (key,) = found
    return unseal(server.app.config, json.loads(store.read(key)[0])["sealed"])


def wait_for_reply(page, text):
    """Send text and wait for the whole reply; return it."""
    reply = send_message(page, text)
    expect(reply).to_have_attribute("data-status", "done", timeout=30_000)
    return reply


def test_sign_in_chat_and_the_reply_is_billed_to_the_user(page, issuer, user_pays, model):
    set_claims(issuer, "hf-browser-payer", preferred_username="payer", name="Paying User")
    page.goto(user_pays.url)
    # A guest is invited to sign in in place of the composer, and nothing can be sent.
    invitation = page.locator("#composer.sign-in-invitation")
    expect(invitation).to_contain_text("paid for by your own Hugging Face account")
    expect(page.locator('textarea[name="text"]')).to_have_count(0)
    invitation.get_by_role("link", name="Sign in with Hugging Face").click()

    authorize_at_provider(page, issuer, "hf-browser-payer")

    expect(page).to_have_url(at(user_pays.url + "/"))
    expect(page.locator('textarea[name="text"]')).to_be_visible()
    reply = wait_for_reply(page, "Who pays for this?")
    expect(reply).to_contain_text("Billed reply.")
    user_token = stored_tokens(user_pays)["access_token"]
    assert model.headers and model.headers[0]["authorization"] == f"Bearer {user_token}"
    assert "hf_operator_token" not in {headers["authorization"] for headers in model.headers}
    assert user_token not in page.content()  # the token never reaches the browser
    page.goto(user_pays.url + "/account/")
    expect(page.get_by_text("Signed in as payer")).to_be_visible()


def test_a_guest_keeps_their_conversations_after_signing_in(page, issuer, user_first, model):
    page.goto(user_first.url)
    wait_for_reply(page, "Asked as a guest")  # user-first: the operator pays for a guest
    assert model.headers[0]["authorization"] == "Bearer hf_operator_token"
    page.reload()  # the sidebar as stored (its live update is not what this test is about)
    expect(page.locator("#sidebar [data-conversation-id]")).to_have_count(1)

    page.goto(user_first.url + "/auth/login")
    page.get_by_role("link", name="Sign in with Hugging Face").click()
    authorize_at_provider(page, issuer, "hf-browser-former-guest")

    expect(page).to_have_url(at(user_first.url + "/"))
    entries = page.locator("#sidebar [data-conversation-id]")
    expect(entries).to_have_count(1)
    entries.first.locator(".entry-link").click()
    expect(page.locator('[data-role="user"]').first).to_contain_text("Asked as a guest")
    page.get_by_role("link", name="New chat", exact=True).click()
    expect(page.locator('[data-role="user"]')).to_have_count(0)
    wait_for_reply(page, "Asked as a user")  # now the user pays
    assert model.headers[-1]["authorization"] == f"Bearer {stored_tokens(user_first)['access_token']}"


def tab_to(page, locator, presses=60):
    """Press Tab until locator has the focus (fail after `presses`): it is reachable by keyboard."""
    for _ in range(presses):
        if locator.evaluate("element => element === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{locator} is not reachable with Tab")


def test_a_password_account_connects_and_disconnects_hugging_face_by_keyboard(page, issuer, user_first):
    set_claims(issuer, "hf-browser-connect", preferred_username="hf-connect", name="Connected Person")
    page.goto(user_first.url + "/auth/register")
    page.get_by_label("Username").fill("passworduser")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page).not_to_have_url(re.compile("/auth/register"))

    page.goto(user_first.url + "/account/")
    section = page.locator("ul.connections")
    expect(section).to_contain_text("Hugging Face: not connected.")
    connect = section.get_by_role("button", name="Connect")
    tab_to(page, connect)
    page.keyboard.press("Enter")

    authorize_at_provider(page, issuer, "hf-browser-connect")

    expect(page).to_have_url(user_first.url + "/account/")
    expect(page.get_by_text("Connected Person is connected")).to_be_visible()
    expect(section).to_contain_text("connected as Connected Person")
    assert stored_tokens(user_first) is not None
    disconnect = section.get_by_role("button", name="Disconnect")
    tab_to(page, disconnect)
    page.keyboard.press("Enter")

    expect(page.get_by_text("Hugging Face is disconnected.")).to_be_visible()
    expect(section).to_contain_text("Hugging Face: not connected.")
    assert stored_tokens(user_first) is None  # its tokens went with it
    # The password still signs in.
    page.get_by_role("button", name="Log out", exact=True).click()
    page.goto(user_first.url + "/auth/login")
    page.get_by_label("Username").fill("passworduser")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(user_first.url + "/account/")
    expect(page.get_by_text("Signed in as passworduser")).to_be_visible()


def test_the_sign_in_button_works_by_keyboard_and_log_out_everywhere_deletes_the_tokens(page, issuer, user_pays):
    page.goto(user_pays.url + "/auth/login")
    button = page.get_by_role("link", name="Sign in with Hugging Face")
    tab_to(page, button)
    page.keyboard.press("Enter")
    authorize_at_provider(page, issuer, "hf-browser-leaving")
    expect(page.locator('textarea[name="text"]')).to_be_visible()
    assert stored_tokens(user_pays) is not None

    page.get_by_role("button", name="Log out everywhere").click()

    expect(page.locator("#composer.sign-in-invitation")).to_be_visible()  # a guest again
    assert list(user_pays.app.extensions["store"].keys(keys.TOKENS)) == []
