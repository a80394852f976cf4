"""The local model runs as llama.cpp's server in a child process of the web process: started once, started
again after a crash (which costs only the replies it was writing), and gone when the web process goes."""

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from chatbot.llm.local import LocalLLM
from support import (
    ROOT,
    Gunicorn,
    HttpChat,
    child_pids,
    finish_reply,
    open_stream_at_first_token,
    parse_events,
    read_events,
    start_conversation,
    stored_conversations,
)

pytestmark = pytest.mark.model

PROMPT = [{"role": "user", "content": "Name three colours."}]


def running(pid):
    """Whether pid is a live process (a zombie nobody has reaped yet is not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(condition, seconds=15):
    """Poll condition until it holds; fail after seconds."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.05)


def test_a_crash_mid_reply_keeps_the_text_and_the_next_message_is_answered(make_app, local_llm, caplog):
    app = make_app(MAX_TOKENS=1000)
    client = app.test_client()
    local_llm.server.child()  # running before the reply starts, so the kill below lands mid-reply
    starts = local_llm.server.starts
    cid, mid = start_conversation(client, "Write a very long story about a dragon.")
    received, rest = open_stream_at_first_token(client, cid, mid)
    os.kill(local_llm.server.pid(), signal.SIGKILL)
    final = dict(parse_events(b"".join([*received, *rest]).decode()))["final"]
    assert 'data-status="error"' in final and "unavailable" in final and "Retry" in final
    reply = stored_conversations(app)[0]["messages"][1]
    assert reply["status"] == "error" and reply["content"].strip()  # what was written before the crash is kept
    assert "killed by SIGKILL during a reply" in caplog.text
    assert client.get(f"/c/{cid}").status_code == 200  # the web process serves on
    cid, mid = start_conversation(client, "Hello there")
    assert 'data-status="done"' in dict(finish_reply(client, cid, mid))["final"]
    assert local_llm.server.starts == starts + 1


def test_concurrent_first_replies_start_one_process_and_none_is_cut_short(model_path):
    llm = LocalLLM(model_path=model_path, threads=1)
    params = {"max_tokens": 24, "seed": 0, "temperature": 0.0}
    try:
        with ThreadPoolExecutor(3) as pool:
            replies = list(pool.map(lambda _: list(llm.stream(PROMPT, **params)), range(3)))
        assert llm.server.starts == 1
        # The server generates one reply at a time, each to its end: its default would end a streaming reply
        # (as if finished) when the next request arrives. A piece is about a token.
        assert [len(pieces) >= 20 for pieces in replies] == [True] * 3
        pid = llm.server.pid()
    finally:
        llm.close()
    assert not running(pid)


def test_a_model_that_cannot_start_fails_the_reply_and_is_tried_again(make_app, tmp_path, caplog):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a GGUF file")
    app = make_app()
    llm = app.extensions["llm"] = LocalLLM(model_path=str(broken), threads=1)
    client = app.test_client()
    for attempt in (1, 2):
        cid, mid = start_conversation(client)
        final = dict(finish_reply(client, cid, mid))["final"]
        assert 'data-status="error"' in final and "The model could not start" in final
        assert llm.server.starts == attempt
    assert "could not start: the model server exited with status" in caplog.text


CHILD_OF_A_WEB_PROCESS = """
import sys
from chatbot.llm.local import LocalLLM
llm = LocalLLM(model_path=sys.argv[1], threads=1)
print(llm.server.child().process.pid, flush=True)
sys.stdin.readline()
"""


@pytest.mark.parametrize("end", ["exit", "SIGKILL"])
def test_the_model_process_ends_with_the_web_process(model_path, end):
    web = subprocess.Popen(
        [sys.executable, "-c", CHILD_OF_A_WEB_PROCESS, model_path],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    pid = int(web.stdout.readline())
    try:
        assert running(pid)
        if end == "exit":
            web.stdin.close()  # the script returns: atexit stops the child
        else:
            web.kill()  # no atexit: the kernel's parent-death signal kills the child
        web.wait(30)
        wait_for(lambda: not running(pid))
    finally:
        web.kill()
        web.wait()
        if running(pid):  # the test failed: leave no model server behind
            os.kill(pid, signal.SIGKILL)


def reply_status(chat, text):
    """Send text as a new chat over HTTP and read the reply's stream to its end; return its final status."""
    cid, mid = chat.start(text)
    final = [event.data for event in read_events(chat.stream(cid, mid)) if event.name == "final"]
    return re.search(r'data-status="(\w+)"', final[0]).group(1)


@pytest.mark.gunicorn
def test_under_gunicorn_a_worker_runs_its_own_model_process_and_leaves_none_behind(tmp_path):
    # gunicorn's PORT is in the worker's environment: the model server must not try to listen on it.
    settings = {"SECRET_KEY": "test-secret-of-at-least-32-characters", "STORAGE_URL": f"file://{tmp_path}/data"}
    server = Gunicorn({**settings, "MAX_TOKENS": "16"}).start()
    try:
        assert reply_status(HttpChat(server.url), "Hello there") == "done"
        [worker] = server.worker_pids()
        [model] = child_pids(worker)
        os.kill(worker, signal.SIGKILL)  # a worker killed outright takes its model process with it
        wait_for(lambda: not running(model))
        wait_for(lambda: server.worker_pids() not in ([], [worker]), seconds=60)
        assert reply_status(HttpChat(server.url), "Hello again") == "done"
        [worker] = server.worker_pids()
        [model] = child_pids(worker)
    finally:
        server.stop()
    assert not running(model)  # a graceful stop stops it too
