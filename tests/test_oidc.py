"""Sign in with Hugging Face (a real OpenID Connect provider plays it), without JavaScript, and its attacks."""

import json

import pytest

from support import guest_uid, start_conversation, stored_conversations
from support.oidc import (
    CLIENT_ID,
    announced_elsewhere,
    authorize,
    set_claims,
    sign_in,
    sign_in_settings,
    start,
    with_params,
)


def _signed_in_as(client):
    page = client.get("/account/")
    return page.text


def _account_documents(app):
    store = app.extensions["store"]
    return {key: json.loads(store.read(key)[0]) for key in store.keys("accounts/")}


def test_the_sign_in_round_trip_without_javascript_makes_an_account_named_from_the_profile(make_app, issuer):
    set_claims(issuer, "hf-alice", preferred_username="alice", name="Alice Liddell")
    app = make_app(**sign_in_settings(issuer))
    client = app.test_client()
    assert "Sign in with Hugging Face" in client.get("/auth/login").text

    answer = sign_in(client, "hf-alice")

    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    assert "Signed in as <strong>alice</strong>" in _signed_in_as(client)
    document = _account_documents(app)["accounts/alice.json"]
    assert document["password_hash"] is None
    assert document["identities"][0]["name"] == "Alice Liddell"
    # Signing in again reaches the same account, with a new session.
    other = app.test_client()
    sign_in(other, "hf-alice")
    assert len(_account_documents(app)["accounts/alice.json"]["sessions"]) == 2
    assert len(_account_documents(app)) == 1


def test_the_authorization_request_carries_pkce_state_and_nonce(make_app, issuer):
    app = make_app(**sign_in_settings(issuer))
    url = start(app.test_client())
    assert url.startswith(f"{issuer}/oauth2/authorize?")
    for parameter in ("code_challenge=", "code_challenge_method=S256", "state=", "nonce=", f"client_id={CLIENT_ID}"):
        assert parameter in url
    assert "scope=openid+profile+inference-api" in url
    assert "redirect_uri=http%3A%2F%2Flocalhost%2Fauth%2Foidc%2Fhuggingface%2Fcallback" in url


def test_a_guest_who_signs_in_keeps_their_conversations(make_app, issuer):
    app = make_app(**sign_in_settings(issuer))
    client = app.test_client()
    start_conversation(client, "What I asked as a guest")
    app.extensions["replies"].wait_for_jobs(30)
    guest = guest_uid(client)

    sign_in(client, "hf-guest-becomes-user")

    account = next(iter(_account_documents(app).values()))
    owners = {key.split("/")[1] for key in app.extensions["store"].keys("users/")}
    assert owners == {account["uid"]} and account["uid"] != guest
    assert stored_conversations(app)[0]["messages"][0]["content"] == "What I asked as a guest"
    assert "What I asked as a guest" in client.get("/", follow_redirects=True).text


def test_a_forged_state_is_refused(make_app, issuer):
    app = make_app(**sign_in_settings(issuer))
    client = app.test_client()
    callback = authorize(start(client), "hf-forged")
    answer = client.get(with_params(callback, state="forged-by-an-attacker"))
    assert answer.status_code == 400
    assert _account_documents(app) == {}


def test_a_replayed_code_is_refused(make_app, issuer):
    set_claims(issuer, "hf-replayed", preferred_username="replayed")
    app = make_app(**sign_in_settings(issuer))
    client = app.test_client()
    callback = authorize(start(client), "hf-replayed")
    assert client.get(callback).status_code == 302
    client.post("/auth/logout")
    assert client.get(callback).status_code == 400  # its state was used up with the code
    attacker = app.test_client()
    assert attacker.get(callback).status_code == 400
    assert len(_account_documents(app)["accounts/replayed.json"]["sessions"]) == 0


def test_an_id_token_with_another_nonce_is_refused(make_app, issuer):
    app = make_app(**sign_in_settings(issuer))
    client = app.test_client()
    url = with_params(start(client), nonce="not-the-nonce-we-sent")
    assert client.get(authorize(url, "hf-nonce")).status_code == 400
    assert _account_documents(app) == {}


def test_an_id_token_for_another_client_is_refused(make_app, issuer):
    app = make_app(**sign_in_settings(issuer))
    client = app.test_client()
    # The code (and its ID token) are issued to another client: our exchange of it must not sign anyone in.
    url = with_params(start(client), client_id="another-client")
    assert client.get(authorize(url, "hf-other-client")).status_code == 400
    assert _account_documents(app) == {}


def test_an_id_token_whose_audience_is_another_client_fails_the_check(make_app, issuer):
    import httpx

    app = make_app(**sign_in_settings(issuer))
    with app.test_request_context():
        from chatbot.oidc import client as oauth_client

        hf = oauth_client("huggingface")
        metadata = hf.load_server_metadata()
        url = hf.create_authorization_url(redirect_uri="http://localhost/cb", nonce="n-1")["url"]
        callback = authorize(with_params(url, client_id="another-client"), "hf-aud")
        code = dict(part.split("=") for part in callback.split("?")[1].split("&"))["code"]
        token = httpx.post(
            metadata["token_endpoint"],
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": "http://localhost/cb"},
            auth=("another-client", "x"),
        ).json()
        from joserfc.errors import ClaimError

        with pytest.raises(ClaimError):  # its audience is not us: it names another party (azp missing)
            hf.parse_id_token(token, nonce="n-1")


def test_an_open_next_is_not_followed(make_app, issuer):
    app = make_app(**sign_in_settings(issuer))
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        client = app.test_client()
        answer = sign_in(client, "hf-next", path=f"/auth/oidc/huggingface/start?next={target}")
        assert answer.headers["Location"] == "/"
    client = app.test_client()
    answer = sign_in(client, "hf-next", path="/auth/oidc/huggingface/start?next=/account/")
    assert answer.headers["Location"] == "/account/"


def test_the_callback_and_the_start_are_rate_limited(make_app, issuer):
    app = make_app(**sign_in_settings(issuer), SIGN_IN_LIMIT_PER_IP="2 per minute")
    client = app.test_client()
    codes = [client.get("/auth/oidc/huggingface/start").status_code for _ in range(3)]
    assert codes == [302, 302, 429]


def _register(client, username):
    client.post("/auth/register", data={"username": username, "password": "correct horse battery"})


def _connect(client, sub):
    answer = client.post("/auth/oidc/huggingface/connect")
    assert answer.status_code == 302
    return client.get(authorize(answer.headers["Location"], sub))


def test_a_password_account_connects_and_disconnects_hugging_face(make_app, issuer):
    set_claims(issuer, "hf-connector", name="Connie")
    app = make_app(**sign_in_settings(issuer))
    client = app.test_client()
    _register(client, "connie")
    assert _connect(client, "hf-connector").headers["Location"] == "/account/"
    assert "connected as <strong>Connie</strong>" in client.get("/account/").text
    # Now the provider signs in to the same account.
    other = app.test_client()
    sign_in(other, "hf-connector")
    assert "Signed in as <strong>connie</strong>" in other.get("/account/").text
    client.post("/auth/oidc/huggingface/disconnect")
    assert "not connected" in client.get("/account/").text
    assert list(app.extensions["store"].keys("identities/")) == []


def test_an_identity_connected_to_another_account_cannot_be_connected_twice(make_app, issuer):
    app = make_app(**sign_in_settings(issuer))
    first, second = app.test_client(), app.test_client()
    _register(first, "first-owner")
    _connect(first, "hf-contested")
    _register(second, "second-owner")
    _connect(second, "hf-contested")
    assert "cannot be connected twice" in second.get("/account/").text
    assert "not connected" in second.get("/account/").text
    assert "Signed in as <strong>first-owner</strong>" in _signed_in_as(_fresh_sign_in(app, "hf-contested"))


def _fresh_sign_in(app, sub):
    client = app.test_client()
    sign_in(client, sub)
    return client


def test_the_last_way_in_cannot_be_disconnected(make_app, issuer):
    app = make_app(**sign_in_settings(issuer))
    client = app.test_client()
    sign_in(client, "hf-only-way-in")
    client.post("/auth/oidc/huggingface/disconnect")
    assert "your only way to sign in" in client.get("/account/").text
    assert len(list(app.extensions["store"].keys("identities/"))) == 1


def test_an_id_token_from_another_issuer_than_the_discovered_one_is_refused(make_app, issuer):
    with announced_elsewhere(issuer) as announced:
        app = make_app(**sign_in_settings(announced))
        client = app.test_client()
        url = start(client)
        assert url.startswith(f"{issuer}/oauth2/authorize?")  # the endpoints are the real provider's
        answer = client.get(authorize(url, "hf-wrong-issuer"))  # its ID token names issuer, not `announced`
    assert answer.status_code == 400 and "did not complete" in answer.text
    assert _account_documents(app) == {}
    assert list(app.extensions["store"].keys("tokens/")) == []


def test_forms_may_go_to_the_provider_and_nowhere_else(make_app, issuer):
    policy = make_app(**sign_in_settings(issuer)).test_client().get("/auth/login").headers["Content-Security-Policy"]
    assert f"form-action 'self' {issuer};" in policy  # Connect's answer redirects there
    plain = make_app().test_client().get("/auth/login").headers["Content-Security-Policy"]
    assert "form-action 'self';" in plain


def test_the_callbacks_code_and_state_are_never_logged(make_app, issuer, caplog):
    app = make_app(**sign_in_settings(issuer))
    client = app.test_client()
    callback = authorize(start(client), "hf-logged")
    query = dict(part.split("=", 1) for part in callback.split("?", 1)[1].split("&"))
    with caplog.at_level("DEBUG"):
        answers = [client.get(callback), client.get(with_params(callback, state="a-forged-state"))]
        for answer in answers:
            answer.close()  # the request's line is logged when its response closes
    assert [answer.status_code for answer in answers] == [302, 400]  # a refusal is logged too
    # The app's lines (and Authlib's); the provider's own server and its werkzeug lines are not the app's.
    ours = [record for record in caplog.records if record.name.split(".")[0] in ("chatbot", "authlib", "root")]
    assert any(record.name == "chatbot.request" and "/callback" in record.getMessage() for record in ours)
    assert any("refused" in record.getMessage() for record in ours)
    for record in ours:
        logged = record.getMessage() + repr(record.__dict__)
        assert query["code"] not in logged and query["state"] not in logged, record.name
