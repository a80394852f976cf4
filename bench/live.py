"""Live replies: Stop's latency, resuming a stream, bytes sent per reply, storage requests per reply."""

import time

from chatbot.render import render_markdown
from chatbot.storage.s3 import S3Store
from support import FakeModelServer, HttpChat, assemble, new_bucket, read_events

from .registry import Row, benchmark, median
from .servers import bench_app, bench_gunicorn, cpu_seconds

# A reply of the kind people ask for: prose, a list, code and a table, about 1,200 characters.
MARKDOWN_REPLY = (
    "## How to read a file in Python\n\n"
    + "Reading a file is one of the first things most programs do. " * 4
    + "\n\nThere are three common ways:\n\n- `open()` with a `with` block\n- `pathlib.Path.read_text()`\n"
    "- the `fileinput` module, for many files\n\n```python\nfrom pathlib import Path\n\n"
    "def read_lines(name):\n    with open(name, encoding='utf-8') as file:\n"
    "        return [line.rstrip() for line in file]\n\n"
    "print(Path('notes.txt').read_text())\n```\n\n| way | best for |\n|---|---|\n| open() | large files |\n"
    "| read_text() | small files |\n| fileinput | many files |\n\n"
    + "Whichever you choose, say the encoding explicitly, so the program behaves the same everywhere. "
    * 5
)
ROUNDS = 10


def pieces_of(text, size=4):
    """text in pieces of about a token each."""
    return [text[start : start + size] for start in range(0, len(text), size)]


def model_settings(fake):
    """The settings that send the app's replies to a fake model server."""
    return {
        "LLM_BACKEND": "huggingface",
        "HF_BASE_URL": fake.url,
        "CHATBOT_MODELS": "fake-model",
        "MAX_REPLIES_AT_ONCE": "1000",
    }


def read_until(response, name):
    got = []
    for event in read_events(response):
        got.append(event)
        if event.name == name:
            break
    return got


@benchmark("stop")
def stop_latency(servers):
    """Time from pressing Stop to the stopped reply arriving on the stream."""
    with FakeModelServer(pieces=pieces_of("word " * 2000), interval=0.02) as fake:
        with bench_gunicorn(**model_settings(fake)) as server:
            chat, latencies = HttpChat(server.url), []
            for _ in range(ROUNDS):
                cid, mid = chat.start("Write a long story.")
                with chat.stream(cid, mid) as response:
                    read_until(response, "render")
                    time.sleep(0.3)
                    pressed = time.perf_counter()
                    chat.stop(cid, mid)
                    read_until(response, "final")
                    latencies.append((time.perf_counter() - pressed) * 1000)
    typical = median(latencies)
    return [
        Row(
            "Stop latency (Stop pressed → stopped reply on the stream)",
            f"{typical:.0f} ms (max {max(latencies):.0f})",
            "≤ 250 ms",
            typical <= 250,
            f"median of {ROUNDS}; gunicorn, a fake model server writing a piece every 20 ms; includes the save",
        )
    ]


@benchmark("resume")
def resume(servers):
    """A stream cut after some events and resumed with Last-Event-ID assembles exactly the final render."""
    with FakeModelServer(pieces=pieces_of(MARKDOWN_REPLY), interval=0.01) as fake:
        with bench_gunicorn(**model_settings(fake)) as server:
            chat, identical = HttpChat(server.url), 0
            final = str(render_markdown(MARKDOWN_REPLY))
            for cut in range(1, ROUNDS + 1):
                cid, mid = chat.start("Explain reading files.")
                with chat.stream(cid, mid) as response:
                    before = []
                    for event in read_events(response):
                        before.append(event)
                        if sum(each.name == "render" for each in before) >= cut * 3:
                            break
                last_id = [event.id for event in before if event.id][-1]
                with chat.stream(cid, mid, last_event_id=last_id) as response:
                    after = read_until(response, "done")
                patches = [event.data for event in before + after if event.name == "render"]
                identical += assemble(patches) == final
    return [
        Row(
            "Resume: what a reconnecting client assembles equals the final render",
            f"{identical} of {ROUNDS}",
            f"{ROUNDS} of {ROUNDS}",
            identical == ROUNDS,
            "cut after 3 to 30 events, resumed with Last-Event-ID; the patches assembled as app.js does, "
            "compared byte for byte with render_markdown of the stored reply",
        )
    ]


@benchmark("bytes")
def bytes_per_reply(servers):
    """Bytes of the event stream of one reply against the size of its final HTML."""
    with FakeModelServer(pieces=pieces_of(MARKDOWN_REPLY), interval=0.025) as fake:
        with bench_gunicorn(**model_settings(fake)) as server:
            chat = HttpChat(server.url)
            cid, mid = chat.start("Explain reading files.")
            with chat.stream(cid, mid) as response:
                body = b"".join(response.iter_content(chunk_size=None))
            events = list(read_events(_Body(body)))
    final_event = next(event for event in events if event.name == "final")
    reply_bytes = sum(
        len(f"id: {event.id}\nevent: render\ndata: ".encode()) + len(event.data.encode()) + 2
        for event in events
        if event.name == "render"
    )
    final_html = len(str(render_markdown(MARKDOWN_REPLY)).encode())
    ratio = reply_bytes / final_html
    return [
        Row(
            "Bytes sent per reply while it streams, against its final HTML",
            f"{reply_bytes:,} B vs {final_html:,} B: {ratio:.2f}×",
            "≤ 3×",
            ratio <= 3,
            f"a {len(MARKDOWN_REPLY):,}-character Markdown reply (prose, list, code, table) in "
            f"{len(fake.pieces)} pieces at 40 a second; every render event with its SSE framing; the whole "
            f"stream with sidebar, final and title events: {len(body):,} B (final event {len(final_event.data):,} B)",
        )
    ]


class _Body:
    """A finished body read like a streaming response."""

    def __init__(self, body):
        self.body = body

    def iter_content(self, chunk_size=None):
        yield self.body


@benchmark("s3requests")
def storage_requests(servers):
    """S3 requests made by one streamed reply, from the message's send to its title."""
    calls = []
    original = S3Store._call

    def counting(store, operation, **params):
        calls.append(operation)
        return original(store, operation, **params)

    with FakeModelServer(pieces=pieces_of("word " * 300), interval=0.04) as fake:  # a 12-second reply
        app = bench_app(STORAGE_URL=f"s3://{new_bucket(servers.s3)}/chatbot", **model_settings(fake))
        client = app.test_client()
        client.get("/new")
        S3Store._call = counting
        try:
            started = time.monotonic()
            client.post("/new", data={"text": "Write a long story."}, headers={"HX-Request": "true"})
            app.extensions["replies"].wait_for_jobs(60)
            seconds = time.monotonic() - started
        finally:
            S3Store._call = original
    reads, writes = calls.count("get_object"), calls.count("put_object")
    return [
        Row(
            "Storage requests per streamed reply on S3",
            f"{len(calls)} ({reads} reads, {writes} writes)",
            "—",
            None,
            f"a {seconds:.0f}-second reply of a new chat, from the send to the title: the partial text is "
            "saved every 5 s; stop and resume cost no storage request (they go through the live backend)",
        )
    ]


# A reply that is one code block, and prose of the same length: a code block still open was rendered whole
# (Markdown, Pygments, bleach) on every update, its work growing with the square of its length.
CODE_LINE = "result = compute_value(alpha, beta) + other_function(gamma)  # comment\n"
CODE_REPLY = "```python\n" + CODE_LINE * 56
PROSE_REPLY = ("Some prose sentence that goes on for a while. " * 2 + "\n\n") * 42


@benchmark("livecpu")
def live_cpu(servers):
    """A worker's CPU for a reply that is one long code block, against a prose reply of the same length."""

    with FakeModelServer(pieces=["x"], interval=0.02) as fake:
        with bench_gunicorn(**model_settings(fake)) as server:
            chat, spent = HttpChat(server.url), {}
            (worker,) = server.worker_pids()
            for name, text in [("warm-up", "Hello."), ("prose", PROSE_REPLY), ("code", CODE_REPLY)]:
                fake.pieces = pieces_of(text, 8)  # about 2 tokens a piece, 50 pieces a second
                before = cpu_seconds(worker)
                cid, mid = chat.start("Write it.")
                with chat.stream(cid, mid) as response:
                    read_until(response, "done")
                spent[name] = cpu_seconds(worker) - before
    ratio = spent["code"] / spent["prose"]
    return [
        Row(
            "A worker's CPU for a reply that is one code block, against prose of the same length",
            f"{spent['code']:.2f} s vs {spent['prose']:.2f} s: {ratio:.1f}×",
            "≤ 2×",
            ratio <= 2,
            f"{len(CODE_REPLY):,} and {len(PROSE_REPLY):,} characters in pieces of 8 from a fake model server, "
            "50 a second; gunicorn's worker's CPU from the send to the title (before the fix, 5.3×)",
        )
    ]
