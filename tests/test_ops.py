"""Health checks (/healthz, /readyz) and the logs an operator reads."""

import json

import pytest
from gunicorn.config import Config as GunicornConfig

from chatbot.llm import RateLimited
from chatbot.logs import GunicornLogger, configure, log_reply, outcome_of, user_hash
from support import FaultProxy, new_bucket


def test_healthz_answers_without_a_session(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}
    assert "Set-Cookie" not in response.headers
    assert "Cookie" not in response.headers.get("Vary", "")


def test_probes_set_no_cookie_for_a_browser_that_has_one(client):
    client.get("/")  # a guest session cookie now
    for path in ("/healthz", "/readyz"):
        response = client.get(path)
        assert response.status_code == 200
        assert "Set-Cookie" not in response.headers, path


def test_probes_need_no_csrf_token(make_app):
    app = make_app(WTF_CSRF_ENABLED=True)
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    assert response.json["status"] == "ready"


def test_readyz_names_the_checks_and_no_secret(make_app):
    app = make_app(SECRET_KEY="a-secret-that-must-not-show", HF_TOKEN="hf_must_not_show")
    response = app.test_client().get("/readyz")
    body = response.get_data(as_text=True)
    assert response.json["checks"]["storage"] == {"ok": True, "kind": "file"}
    assert response.json["checks"]["model"]["ok"] is True
    assert "a-secret-that-must-not-show" not in body and "hf_must_not_show" not in body
    assert str(app.instance_path) not in body and "/data" not in body
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_is_503_when_the_storage_folder_cannot_be_written(make_app, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    app = make_app(STORAGE_URL=f"file://{blocker}/data")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["status"] == "not ready"
    assert response.json["checks"]["storage"]["ok"] is False
    assert "cannot be created" in response.json["checks"]["storage"]["error"]


@pytest.mark.s3
def test_readyz_follows_s3_down_and_back(make_app, s3_server, monkeypatch):
    proxy = FaultProxy(s3_server.port).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    app = make_app(STORAGE_URL=f"s3://{new_bucket(s3_server)}/chatbot")
    client = app.test_client()
    assert client.get("/readyz").status_code == 200

    proxy.cut()
    down = client.get("/readyz")
    assert down.status_code == 503
    assert down.json["checks"]["storage"] == {
        "ok": False,
        "kind": "s3",
        "error": "S3 cannot be reached (network, or AWS_ENDPOINT_URL)",
    }
    assert proxy.url not in down.get_data(as_text=True)
    assert client.get("/healthz").status_code == 200  # the process is still up

    proxy.restore()
    assert client.get("/readyz").status_code == 200


@pytest.mark.s3
def test_readyz_says_what_to_fix_for_a_missing_bucket(make_app, s3_server, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    app = make_app(STORAGE_URL="s3://no-such-bucket-here/chatbot")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert "fix STORAGE_URL" in response.json["checks"]["storage"]["error"]


def json_lines(text):
    """The JSON objects among the lines of text (other lines are ignored)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_each_request_logs_one_json_line_without_content(make_app, capsys):
    app = make_app(LOG_FORMAT="json")
    client = app.test_client()
    client.get("/healthz").close()
    secret_text = "my very private question about cheese"
    client.post("/new", data={"text": secret_text}).close()
    response = client.get("/c/not-a-real-conversation", headers={"X-Request-ID": "req-1234abcd"})
    response.close()
    app.extensions["replies"].wait_for_jobs(30)

    output = capsys.readouterr().err
    assert secret_text not in output
    requests = [line for line in json_lines(output) if line.get("event") == "request"]
    health, sent, missing = requests[-3:]
    assert health["route"] == "/healthz" and health["status"] == 200 and health["method"] == "GET"
    assert health["user"] is None  # a probe never loads the session
    assert sent["method"] == "POST" and sent["route"] == "/new"
    assert len(sent["user"]) == 12 and sent["user"] != "guest_uid"
    assert missing["request_id"] == "req-1234abcd" and missing["status"] == 404
    assert response.headers["X-Request-ID"] == "req-1234abcd"
    for line in requests:
        assert {"time", "level", "logger", "message", "request_id", "duration_ms"} <= line.keys()
        assert line["duration_ms"] >= 0


def test_a_strange_request_id_is_replaced(client):
    response = client.get("/healthz", headers={"X-Request-ID": '"}{"status": 500'})
    assert response.headers["X-Request-ID"] != '"}{"status": 500'
    assert len(response.headers["X-Request-ID"]) == 36  # a fresh UUID


def test_text_format_keeps_readable_lines(make_app, capsys):
    app = make_app(LOG_FORMAT="text")
    app.test_client().get("/healthz").close()
    line = [line for line in capsys.readouterr().err.splitlines() if "chatbot.request" in line][-1]
    assert "INFO chatbot.request: GET /healthz 200" in line
    assert not line.startswith("{")


def test_debug_mode_defaults_to_text_and_production_to_json(make_app):
    assert make_app(DEBUG=True).config["LOG_FORMAT"] == "text"
    assert make_app().config["LOG_FORMAT"] == "json"


@pytest.mark.parametrize("setting, format", [("text", "text"), ("json", "json"), (" JSON ", "json"), ("", "json")])
def test_the_log_format_setting_reaches_the_app_and_gunicorn(make_app, capsys, monkeypatch, setting, format):
    monkeypatch.setenv("LOG_FORMAT", setting)
    app = make_app()
    assert app.config["LOG_FORMAT"] == format
    app.test_client().get("/healthz").close()
    GunicornLogger(GunicornConfig()).info("Booting worker with pid: %s", 42)

    lines = capsys.readouterr().err.splitlines()
    request_line = [line for line in lines if "GET /healthz 200" in line][-1]
    gunicorn_line = [line for line in lines if "Booting worker with pid: 42" in line][-1]
    assert request_line.startswith("{") == (format == "json")
    assert gunicorn_line.startswith("{") == (format == "json")


def test_reply_line_has_timings_and_outcome(capsys):
    configure("json")
    log_reply(model="some/model", ttft_ms=120, pieces=33, duration_ms=900, outcome="done", uid="abcdefghijklmnop")
    log_reply(
        model="some/model",
        ttft_ms=None,
        pieces=0,
        duration_ms=40,
        outcome=outcome_of(RateLimited("429")),
        conversation="cid12345",
    )
    done, limited = [line for line in json_lines(capsys.readouterr().err) if line.get("event") == "reply"][-2:]
    assert done == {
        **done,
        "model": "some/model",
        "ttft_ms": 120,
        "pieces": 33,
        "duration_ms": 900,
        "outcome": "done",
        "user": user_hash("abcdefghijklmnop"),
        "level": "INFO",
    }
    assert limited["outcome"] == "rate_limited" and limited["level"] == "WARNING"
    assert limited["ttft_ms"] is None and limited["conversation"] == "cid12345"
