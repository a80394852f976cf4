"""The Hugging Face backend through the real InferenceClient over HTTP.

Replies come from llama-cpp-python's OpenAI-compatible server running the
SmolLM2 GGUF; HF's error answers (401, 429, 503, an error event mid-stream)
come from a small fake of Hugging Face's router, since nothing here can reach it.
"""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chatbot import keys
from chatbot.llm import RateLimited, Rejected, TimedOut, Unavailable
from chatbot.llm.huggingface import HuggingFaceLLM
from support import (
    FaultProxy,
    finish_reply,
    free_port,
    guest_uid,
    open_stream_at_first_token,
    parse_events,
    seed_conversations,
    start_conversation,
    stored_conversations,
)

MODELS = "google/gemma-2-9b-it,HuggingFaceTB/SmolLM2-135M-Instruct"


def hf_app(make_app, base_url, **settings):
    return make_app(
        LLM_BACKEND="huggingface",
        HF_TOKEN="hf_test_token",
        HF_BASE_URL=base_url,
        CHATBOT_MODELS=MODELS.split(","),
        **settings,
    )


@pytest.fixture
def app(make_app, llama_server):
    return hf_app(make_app, llama_server + "/v1")


@pytest.mark.model
def test_backend_is_chosen_by_the_token(app):
    assert isinstance(app.extensions["llm"], HuggingFaceLLM)
    assert app.extensions["llm"].models == MODELS.split(",")


@pytest.mark.model
def test_reply_streams_through_the_inference_client(app):
    client = app.test_client()
    cid, mid = start_conversation(client, "Name three colours.")
    events = finish_reply(client, cid, mid)
    kinds = [kind for kind, _ in events]
    assert kinds.count("render") >= 2
    assert kinds[-3:] == ["final", "title", "done"]
    [conversation] = stored_conversations(app)
    assert conversation["messages"][1]["status"] == "done"
    assert conversation["messages"][1]["model"] == "google/gemma-2-9b-it"
    assert 0 < len(conversation["title"].split()) <= 6


@pytest.mark.model
def test_model_choice_is_kept_per_conversation_and_shown_on_the_reply(app):
    client = app.test_client()
    response = client.post(
        "/new", data={"text": "Hi", "model": "HuggingFaceTB/SmolLM2-135M-Instruct"}, headers={"HX-Request": "true"}
    )
    cid = response.headers["HX-Push-Url"].rsplit("/", 1)[1]
    mid = stored_conversations(app)[0]["messages"][1]["id"]
    final = dict(finish_reply(client, cid, mid))["final"]
    assert '<span class="model">HuggingFaceTB/SmolLM2-135M-Instruct</span>' in final
    page = client.get(f"/c/{cid}").text
    assert '<option value="HuggingFaceTB/SmolLM2-135M-Instruct" selected>' in page

    other, _ = start_conversation(client, "Hello again")
    assert '<option value="google/gemma-2-9b-it" selected>' in client.get(f"/c/{other}").text


@pytest.mark.model
def test_long_history_is_trimmed_to_fit_the_model(make_app, llama_server):
    app = hf_app(make_app, llama_server + "/v1", CONTEXT_CHARS=2000)
    client = app.test_client()
    cid, _ = start_conversation(client, "first")
    uid = guest_uid(client)
    # 40 turns of 1,000 characters: far more than the server's 2,048-token context.
    store = app.extensions["store"]
    [entry] = seed_conversations(store, uid, 1, messages=40)
    document = json.loads(store.read(keys.conversation(uid, entry["id"]))[0])
    for message in document["messages"]:
        message["content"] = "word " * 200
    store.write(keys.conversation(uid, entry["id"]), json.dumps(document).encode())

    response = client.post(f"/c/{entry['id']}/messages", data={"text": "Summarise."}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    mid = json.loads(store.read(keys.conversation(uid, entry["id"]))[0])["messages"][-1]["id"]
    final = dict(finish_reply(client, entry["id"], mid))["final"]
    assert 'data-status="done"' in final


@pytest.mark.model
def test_untrimmed_long_history_gets_no_answer(make_app, llama_server):
    """Without trimming: llama.cpp's server answers 200 with an empty stream; the chat says so."""
    llm = HuggingFaceLLM(models=["m"], base_url=llama_server + "/v1", token="t")
    assert list(llm.stream([{"role": "user", "content": "word " * 5000}], "m", max_tokens=8)) == []

    app = hf_app(make_app, llama_server + "/v1", CONTEXT_CHARS=10**6, MAX_MESSAGE_CHARS=20000)
    client = app.test_client()
    cid, mid = start_conversation(client, "word " * 3000)
    final = dict(finish_reply(client, cid, mid))["final"]
    assert 'data-status="error"' in final and "empty reply" in final


@pytest.mark.model
def test_server_gone_mid_stream_keeps_the_partial_reply(make_app, llama_server):
    proxy = FaultProxy(int(llama_server.rsplit(":", 1)[1])).start()
    app = hf_app(make_app, proxy.url + "/v1", MAX_TOKENS=400)
    client = app.test_client()
    cid, mid = start_conversation(client, "Count from one to one hundred in words.")
    _, chunks = open_stream_at_first_token(client, cid, mid)
    proxy.cut()
    events = parse_events(b"".join(chunks).decode())
    final = dict(events)["final"]
    assert 'data-status="error"' in final
    # The wording depends on where the cut lands (mid-line, between events); each is a readable error.
    assert re.search(r'<p class="reply-error">[^<]{20,}</p>', final), final
    [conversation] = stored_conversations(app)
    user, reply = conversation["messages"]
    assert user["content"] == "Count from one to one hundred in words."
    assert reply["status"] == "error" and reply["content"]


class FakeHuggingFaceErrors(BaseHTTPRequestHandler):
    """A fake of the error answers of Hugging Face's router: fixed statuses, nothing else."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        scenario = self.path.split("/")[1]
        if scenario == "slow":
            # No answer: the connection stays silent until the client gives up and hangs up (10 s at most).
            self.connection.settimeout(10)
            self.rfile.read(1)
            return
        if scenario == "midstream":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            chunk = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Half an answer"}}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            error = {"error": "Model is overloaded", "error_type": "overloaded"}
            self.wfile.write(f"data: {json.dumps(error)}\n\n".encode())
            return
        status, headers, error = {
            "unauthorized": (401, {}, "Invalid credentials in Authorization header"),
            "ratelimited": (429, {"Retry-After": "7"}, "Rate limit reached. You reached free usage limit."),
            "unavailable": (503, {}, "Model google/gemma-2-9b-it is currently loading"),
        }[scenario]
        body = json.dumps({"error": error}).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def fake_hf():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHuggingFaceErrors)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()  # shutdown() waits a poll
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.mark.parametrize(
    "scenario, error_type, shown",
    [
        ("unauthorized", Rejected, "The operator must set a valid HF_TOKEN."),
        ("ratelimited", RateLimited, "Please retry in 7 seconds."),
        ("unavailable", Unavailable, "unavailable right now (it may be loading)"),
        ("midstream", Unavailable, "stopped with an error before finishing"),
    ],
)
def test_hugging_face_errors_become_clear_messages(fake_hf, make_app, scenario, error_type, shown):
    llm = HuggingFaceLLM(models=["m"], base_url=f"{fake_hf}/{scenario}", token="t")
    with pytest.raises(error_type) as raised:
        list(llm.stream([{"role": "user", "content": "hi"}], "m"))
    assert shown in raised.value.user_message

    app = hf_app(make_app, f"{fake_hf}/{scenario}")
    client = app.test_client()
    cid, mid = start_conversation(client, "keep me")
    final = dict(finish_reply(client, cid, mid))["final"]
    assert 'data-status="error"' in final and "Retry" in final
    assert shown in final.replace("&#39;", "'")
    user, reply = stored_conversations(app)[0]["messages"]
    assert user["content"] == "keep me" and reply["status"] == "error"
    if scenario == "midstream":
        assert reply["content"] == "Half an answer"


def test_rate_limit_reads_retry_after(fake_hf):
    llm = HuggingFaceLLM(models=["m"], base_url=f"{fake_hf}/ratelimited", token="t")
    with pytest.raises(RateLimited) as raised:
        list(llm.stream([{"role": "user", "content": "hi"}], "m"))
    assert raised.value.retry_after == 7


def test_timeout_is_reported(fake_hf):
    llm = HuggingFaceLLM(models=["m"], base_url=f"{fake_hf}/slow", token="t", timeout=0.2)
    with pytest.raises(TimedOut):
        list(llm.stream([{"role": "user", "content": "hi"}], "m"))


def test_unreachable_server_is_reported():
    llm = HuggingFaceLLM(models=["m"], base_url=f"http://127.0.0.1:{free_port()}/v1", token="t")
    with pytest.raises(Unavailable) as raised:
        list(llm.stream([{"role": "user", "content": "hi"}], "m"))
    assert "cannot be reached" in raised.value.user_message
