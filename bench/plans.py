"""Redis on a small Key-Value Store plan: connections per process with 200 streams open, and the memory a
reply's log holds while it streams and once it finished."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from chatbot.render import render_markdown
from support import FakeModelServer, HttpChat, RedisServer, read_events

from .live import MARKDOWN_REPLY, pieces_of
from .registry import Row, benchmark
from .servers import bench_gunicorn

STREAMS = 200
GUESTS = 20  # the streams come from this many guests, 10 each
# Heroku Key-Value Store `mini`: 25 MB.
MINI_BYTES = 25 * 1024 * 1024
# A reply of 120 words, as the issue measured (37.7 KiB held for 10 minutes before compaction).
WORDS = [f"word{number}{'.' if number % 12 == 11 else ''} " for number in range(120)]


def deployment(fake, redis_url):
    """One gunicorn process on redis_url with its rate limits on (they use Redis), raised for the load."""
    return bench_gunicorn(
        REDIS_URL=redis_url,
        WEB_CONCURRENCY="1",
        RATELIMIT_ENABLED="true",
        LLM_BACKEND="huggingface",
        HF_BASE_URL=fake.url,
        CHATBOT_MODELS="fake-model",
        MAX_REPLIES_AT_ONCE="1000",
        MESSAGE_LIMIT="1000 per minute",
        MESSAGE_LIMIT_PER_IP="1000 per minute",
        STREAM_LIMIT_PER_IP="1000 per minute",
        MAX_OPEN_STREAMS_PER_IP="1000",
    )


def _read_to_done(chat, cid, mid, opened):
    with chat.stream(cid, mid, timeout=120) as response:
        opened.release()
        return any(event.name == "done" for event in read_events(response))


@benchmark("connections")
def connections(servers):
    """Redis connections one process holds with 200 reply streams open."""
    with FakeModelServer(pieces=WORDS[:60], interval=0.25) as fake, RedisServer() as redis_server:
        with deployment(fake, redis_server.url) as server, redis_server.peak_clients(0.05) as clients:
            chats = [HttpChat(server.url) for _ in range(GUESTS)]
            started = [(chat, *chat.start("Write a story.")) for chat in chats for _ in range(STREAMS // GUESTS)]
            opened = threading.Semaphore(0)
            with ThreadPoolExecutor(STREAMS) as pool:
                results = [pool.submit(_read_to_done, chat, cid, mid, opened) for chat, cid, mid in started]
                all_open = all(opened.acquire(timeout=60) for _ in started)
                while_open = clients.peak  # every stream is open, and the replies are being written
                done = sum(result.result() for result in results)
    held = clients.peak
    return [
        Row(
            f"Redis connections of one process with {STREAMS} reply streams open",
            f"{held} (while all {STREAMS} were open: {while_open}; {done} of {STREAMS} replies complete)",
            "≤ 5",
            held <= 5 and done == STREAMS and all_open,
            f"the peak of INFO clients (sampled every 50 ms) while {GUESTS} guests' {STREAMS} replies stream from one "
            "gunicorn process (rate limits on, in Redis): the reader thread's connection and a pool of 4; "
            "before: one per open stream and more (84 for 40 replies on two processes)",
        )
    ]


def _log_sizes(pieces, interval):
    """One reply of pieces under gunicorn on a fresh Redis: (its log's peak while streaming, its log once
    done, its final event's HTML, its Markdown's HTML), in bytes; MEMORY USAGE with SAMPLES 0 (every node)."""
    with FakeModelServer(pieces=pieces, interval=interval) as fake, RedisServer() as redis_server:
        with deployment(fake, redis_server.url) as server:
            chat = HttpChat(server.url)
            cid, mid = chat.start("Write something.")
            client, log = redis_server.client(), f"chatbot:reply:{cid}:{mid}:events"
            peak = final_bytes = 0
            with chat.stream(cid, mid) as response:
                for event in read_events(response):
                    peak = max(peak, client.memory_usage(log, samples=0) or 0)
                    final_bytes = len(event.data.encode()) if event.name == "final" else final_bytes
                    if event.name == "done":
                        break
            while client.xlen(log) != 3:  # compacted a few seconds after the end: final, title, done
                time.sleep(0.1)
            finished = client.memory_usage(log, samples=0)
            client.close()
    return peak, finished, final_bytes, len(str(render_markdown(fake.text)).encode())


@benchmark("redismemory")
def redis_memory(servers):
    """Redis memory a reply's log holds while it streams, and once it finished, against its final HTML."""
    rows = []
    replies = [
        ("a 120-word reply", WORDS, 0.05, f"{len(WORDS)} words at 20 a second"),
        (
            "a Markdown reply",
            pieces_of(MARKDOWN_REPLY),
            0.025,
            f"{len(MARKDOWN_REPLY):,} characters of prose, list, code and table at 40 pieces a second",
        ),
    ]
    for name, pieces, interval, pace in replies:
        peak, finished, final_bytes, html = _log_sizes(pieces, interval)
        rows.append(
            Row(
                f"Redis memory of {name} once finished, against its final HTML",
                f"{finished:,} B vs {html:,} B: {finished / html:.2f}× (at its peak while streaming: {peak:,} B, "
                f"{peak / html:.1f}×)",
                "≤ 2×",
                finished <= 2 * html,
                f"MEMORY USAGE (SAMPLES 0) of the reply's log at each event of its stream, and once done (kept 10 "
                "minutes: its final event, title and done, the log rebuilt from them 5 s after the end); "
                f"{pace}; the final event with the reply's controls is {final_bytes:,} B. A 25 MB `mini` plan "
                f"holds about {MINI_BYTES // finished:,} such finished replies",
            )
        )
    return rows
