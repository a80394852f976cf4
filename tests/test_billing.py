"""Who pays for a reply: the operator, or the user signed in with Hugging Face (a real OIDC provider plays it),
seen where the requests arrive, at the tests' FAKE OpenAI-compatible model server."""

from datetime import timedelta

import httpx
import pytest

from chatbot import keys
from chatbot.tokens import unseal
from support import HTMX, FakeModelServer, finish_reply, start_conversation, stored_conversations
from support.oidc import oidc_provider, set_claims, sign_in, sign_in_settings


@pytest.fixture
def model():
    """The FAKE model server the Hugging Face backend talks to (HF_BASE_URL)."""
    with FakeModelServer(pieces=["Billed ", "reply."], interval=0) as server:
        yield server


def _app(make_app, issuer, model, **settings):
    return make_app(
        LLM_BACKEND="huggingface",
        HF_BASE_URL=model.url,
        HF_TOKEN="hf_operator_token",
        CHATBOT_MODELS=["fake-model"],
        **sign_in_settings(issuer, **settings),
    )


def _stored_tokens(app):
    store = app.extensions["store"]
    (key,) = list(store.keys(keys.TOKENS))
    return unseal(app.config, __import__("json").loads(store.read(key)[0])["sealed"])


def _chat(client):
    cid, mid = start_conversation(client)
    finish_reply(client, cid, mid)
    return stored_conversations_of(client)


def stored_conversations_of(client):
    return stored_conversations(client.application)[0]["messages"][1]


def test_in_user_mode_the_signed_in_user_pays_with_their_own_token(make_app, issuer, model):
    app = _app(make_app, issuer, model, INFERENCE_BILLING="user")
    client = app.test_client()
    sign_in(client, "hf-payer")
    reply = _chat(client)
    assert (reply["status"], reply["content"]) == ("done", "Billed reply.")
    user_token = _stored_tokens(app)["access_token"]
    # The reply and its title, both on the user's account; the token is nowhere in a page.
    assert [headers["authorization"] for headers in model.headers] == [f"Bearer {user_token}"] * 2
    assert user_token not in client.get("/", follow_redirects=True).text
    assert user_token not in client.get("/account/").text


def test_in_operator_mode_the_operator_pays_even_for_a_hugging_face_user(make_app, issuer, model):
    app = _app(make_app, issuer, model)
    client = app.test_client()
    sign_in(client, "hf-operator-pays")
    _chat(client)
    assert {headers["authorization"] for headers in model.headers} == {"Bearer hf_operator_token"}


def test_user_first_lets_a_guest_chat_on_the_operator(make_app, issuer, model):
    app = _app(make_app, issuer, model, INFERENCE_BILLING="user-first")
    _chat(app.test_client())
    assert {headers["authorization"] for headers in model.headers} == {"Bearer hf_operator_token"}


def test_in_user_mode_a_guest_is_invited_to_sign_in_and_nothing_is_sent(make_app, issuer, model):
    app = _app(make_app, issuer, model, INFERENCE_BILLING="user")
    client = app.test_client()
    page = client.get("/", follow_redirects=True).text
    assert "Sign in with Hugging Face" in page and 'id="composer-text"' not in page
    answer = client.post("/new", data={"text": "Hello"}, headers=HTMX)
    assert answer.status_code == 401 and "sign in with Hugging Face" in answer.text
    assert answer.headers["HX-Retarget"] == "#composer-error"
    assert stored_conversations(app) == [] and model.requests == 0


def test_replies_carry_the_organisation_the_user_chose_to_bill(make_app, issuer, model):
    set_claims(
        issuer,
        "hf-org-member",
        preferred_username="member",
        orgs=[
            {"preferred_username": "acme", "canPay": True},
            {"preferred_username": "no-billing", "canPay": False},
        ],
    )
    app = _app(make_app, issuer, model, INFERENCE_BILLING="user")
    client = app.test_client()
    sign_in(client, "hf-org-member")
    assert 'value="acme"' in client.get("/account/").text
    client.post("/account/bill-to", data={"organisation": "no-billing"})  # not one it can bill: refused
    client.post("/account/bill-to", data={"organisation": "acme"})
    _chat(client)
    assert {headers.get("x-hf-bill-to") for headers in model.headers} == {"acme"}


def test_a_short_lived_token_is_refreshed_before_a_reply(make_app, model):
    with oidc_provider(access_token_max_age=timedelta(seconds=30)) as short_lived:
        app = _app(make_app, short_lived, model, INFERENCE_BILLING="user")
        client = app.test_client()
        sign_in(client, "hf-refresh")
        first = _stored_tokens(app)["access_token"]
        _chat(client)
        renewed = _stored_tokens(app)["access_token"]
        assert renewed != first
        assert {headers["authorization"] for headers in model.headers} == {f"Bearer {renewed}"}
        userinfo = httpx.get(f"{short_lived}/userinfo", headers={"Authorization": f"Bearer {renewed}"})
        assert userinfo.status_code == 200


def test_a_token_that_cannot_be_refreshed_asks_to_sign_in_again_and_keeps_the_message(make_app, model):
    with oidc_provider(access_token_max_age=timedelta(seconds=30)) as short_lived:
        app = _app(make_app, short_lived, model, INFERENCE_BILLING="user")
        client = app.test_client()
        sign_in(client, "hf-revoked")
        httpx.post(f"{short_lived}/users/hf-revoked/revoke-tokens").raise_for_status()
        answer = client.post("/new", data={"text": "Keep me"})  # without JavaScript
        assert answer.status_code == 401
        assert "Sign in with Hugging Face again" in answer.text and ">Keep me</textarea>" in answer.text
        assert stored_conversations(app) == [] and model.requests == 0


def test_no_credits_left_is_said_plainly_with_what_to_do(make_app, issuer, model):
    model.status = 402
    app = _app(make_app, issuer, model, INFERENCE_BILLING="user")
    client = app.test_client()
    sign_in(client, "hf-broke")
    reply = _chat(client)
    assert reply["status"] == "error"
    assert "no Inference credits left" in reply["error"] and "organisation" in reply["error"]


def test_log_out_everywhere_deletes_the_stored_tokens(make_app, issuer, model):
    app = _app(make_app, issuer, model, INFERENCE_BILLING="user")
    client = app.test_client()
    sign_in(client, "hf-leaving")
    assert list(app.extensions["store"].keys(keys.TOKENS))
    client.post("/auth/logout-everywhere")
    assert list(app.extensions["store"].keys(keys.TOKENS)) == []


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (401, "no longer accepts your sign-in. Sign in with Hugging Face again"),
        (403, "does not allow inference, or your plan cannot use this model"),
    ],
)
def test_a_refusal_of_the_users_own_account_is_said_plainly(make_app, issuer, model, status, said):
    model.status = status
    app = _app(make_app, issuer, model, INFERENCE_BILLING="user")
    client = app.test_client()
    sign_in(client, f"hf-refused-{status}")
    reply = _chat(client)
    assert reply["status"] == "error" and said in reply["error"]
    assert model.headers[0]["authorization"] == f"Bearer {_stored_tokens(app)['access_token']}"


def _expiring_tokens(app, uid):
    """Store tokens for uid that are due for a refresh, as a sign-in would have."""
    with app.app_context():
        from chatbot import tokens

        tokens.save(
            app.extensions["store"],
            uid,
            "https://issuer.example",
            {"access_token": "old", "refresh_token": "r", "expires_in": 5},
        )


@pytest.mark.parametrize("meanwhile", ["disconnect", "log out everywhere", "delete the account"])
def test_a_refresh_that_returns_after_the_tokens_were_deleted_brings_nothing_back(make_app, meanwhile):
    # Each of those deletes the stored record while the provider is still answering the refresh.
    from chatbot import tokens

    app = make_app()
    store = app.extensions["store"]
    _expiring_tokens(app, "u1")

    def refresh_while_they_are_deleted(refresh_token):
        tokens.delete(store, "u1")  # what the three do to the tokens, at that very moment
        return {"access_token": "renewed", "refresh_token": "r2", "expires_in": 3600}

    with app.app_context(), pytest.raises(tokens.SignInAgain):
        tokens.fresh_access_token(store, "u1", refresh_while_they_are_deleted)
    assert tokens.stored(store, "u1") is None, f"the refreshed tokens came back after {meanwhile}"


def test_a_callback_with_its_state_but_without_a_code_is_refused_not_a_server_error(make_app, issuer, model):
    app = _app(make_app, issuer, model)
    client = app.test_client()
    started = client.get("/auth/oidc/huggingface/start")
    state = httpx.URL(started.headers["Location"]).params["state"]
    response = client.get(f"/auth/oidc/huggingface/callback?state={state}")
    assert response.status_code == 400


def test_abandoned_sign_ins_do_not_pile_up_in_the_session(make_app, issuer, model):
    app = _app(make_app, issuer, model)
    client = app.test_client()
    for _ in range(25):
        client.get("/auth/oidc/huggingface/start")
    with client.session_transaction() as session:
        pending = [key for key in session if key.startswith("_state_huggingface_")]
    assert len(pending) == 1


def test_replies_a_user_pays_for_are_not_held_to_the_operators_budget(make_app, issuer):
    """The daily token budget caps what the operator pays for: a user paying for their own replies may have
    several written at once, though the operator's budget has no room for even one (MAX_TOKENS each)."""
    with FakeModelServer(pieces=[f"w{number} " for number in range(30)], interval=0.05) as slow:
        app = _app(
            make_app,
            issuer,
            slow,
            INFERENCE_BILLING="user",
            RATELIMIT_ENABLED=True,
            MAX_TOKENS=100,
            DAILY_TOKEN_BUDGET=10,
            DAILY_TOKEN_BUDGET_PER_IP=10,
            MAX_REPLIES_AT_ONCE=3,
        )
        client = app.test_client()
        sign_in(client, "hf-many")
        first, _ = start_conversation(client, "one")
        second = client.post("/new", data={"text": "two"}, headers=HTMX)  # while the first is being written
        assert second.status_code == 200, second.text
        app.extensions["replies"].wait_for_jobs(10)
