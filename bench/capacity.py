"""The capacity model (README "Capacity"): S3 requests and bytes per message and per reply, a worker's memory,
threads and CPU per open stream, Redis memory per reply; from them, what each Heroku dyno size and Key-Value
Store plan holds. A run writes the tables into bench/RESULTS.md between the capacity markers."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timezone

from chatbot.redis_client import POOL_SIZE
from chatbot.storage.s3 import S3Store
from support import HTMX, FakeModelServer, HttpChat, RedisServer, new_bucket, read_events

from . import capacity_model as model
from .live import MARKDOWN_REPLY, model_settings, pieces_of
from .plans import deployment
from .registry import Row, benchmark
from .report import RESULTS, machine
from .servers import cpu_seconds
from .serving import rss_mb

STREAMS = 100
GUESTS = 10  # the streams come from this many guests, 10 each
REPLY_SECONDS = 24  # the measured replies: long enough for all STREAMS to be open at once on a loaded machine
EARLIER_EXCHANGES = 9  # the follow-up measured is a conversation's 10th message
# The reply length the table assumes: 300 tokens at 15 a second, as a hosted model streams.
ASSUMED_REPLY_SECONDS = 20
START, END = "<!-- capacity:start -->", "<!-- capacity:end -->"


class StorageTally:
    """S3 requests by kind and the bytes of their bodies, counted at the S3Store's methods."""

    def __init__(self):
        self.requests = {"GET": 0, "PUT": 0, "LIST": 0, "DELETE": 0}
        self.read_bytes = self.written_bytes = 0

    def snapshot(self):
        """(requests, bytes read, bytes written) so far."""
        return dict(self.requests), self.read_bytes, self.written_bytes

    @contextmanager
    def counting(self):
        """Count every S3Store read, write, delete and listing while open."""
        read, write, delete, keys = S3Store.read, S3Store.write, S3Store.delete, S3Store.keys
        tally = self

        def counted_read(store, key):
            found = read(store, key)
            tally.requests["GET"] += 1
            tally.read_bytes += len(found[0]) if found else 0
            return found

        def counted_write(store, key, data, **options):
            tally.requests["PUT"] += 1
            tally.written_bytes += len(data)
            return write(store, key, data, **options)

        def counted_delete(store, key):
            tally.requests["DELETE"] += 1
            return delete(store, key)

        def counted_keys(store, prefix=""):
            tally.requests["LIST"] += 1  # one per 1,000 keys; the app lists rarely (export, deletion)
            return keys(store, prefix)

        counted = (counted_read, counted_write, counted_delete, counted_keys)
        S3Store.read, S3Store.write, S3Store.delete, S3Store.keys = counted
        try:
            yield self
        finally:
            S3Store.read, S3Store.write, S3Store.delete, S3Store.keys = read, write, delete, keys


def _difference(after, before):
    return {kind: after[0][kind] - before[0][kind] for kind in after[0]}, after[1] - before[1], after[2] - before[2]


def _send_and_reply(app, client, tally, cid):
    """Send one message (a new chat when cid is None); return the S3 (requests, read, written) of the send
    and of its reply's job (partial saves every 5 s, the final save, the title), and the cid."""
    before = tally.snapshot()
    if cid is None:
        response = client.post("/new", data={"text": "Write a long story."}, headers=HTMX)
        cid = response.headers["HX-Push-Url"].rsplit("/", 1)[1]
    else:
        client.post(f"/c/{cid}/messages", data={"text": "Go on with the story."}, headers=HTMX)
    sent = tally.snapshot()
    app.extensions["replies"].wait_for_jobs(120)
    return _difference(sent, before), _difference(tally.snapshot(), sent), cid


def measure_storage(servers):
    """S3 figures of a new chat's first message and of a 10th message: {case: (send, reply)}."""
    from .servers import bench_app

    fake = FakeModelServer(pieces=pieces_of(MARKDOWN_REPLY), interval=REPLY_SECONDS / 2 / 300)
    with fake, StorageTally().counting() as tally:
        app = bench_app(STORAGE_URL=f"s3://{new_bucket(servers.s3)}/chatbot", **model_settings(fake))
        client = app.test_client()
        client.get("/new")
        first_send, first_reply, cid = _send_and_reply(app, client, tally, None)
        fake.interval = 0  # the earlier exchanges at once
        for _ in range(EARLIER_EXCHANGES - 1):
            _send_and_reply(app, client, tally, cid)
        fake.interval = REPLY_SECONDS / 2 / 300
        later_send, later_reply, _ = _send_and_reply(app, client, tally, cid)
    return {"a new chat's first message": (first_send, first_reply), "a 10th message": (later_send, later_reply)}


def storage_rows(storage):
    """Rows of S3 requests and bytes per message and per reply, and their cost."""
    rows = []
    for case, (send, reply) in storage.items():
        total = {kind: send[0][kind] + reply[0][kind] for kind in send[0]}
        rows.append(
            Row(
                f"S3 requests and bytes for {case}: its send + its reply",
                f"send {_requests(send)}; reply {_requests(reply)}; ${model.s3_cost(total):.4f} per 1,000 messages",
                "—",
                None,
                f"S3Store's reads, writes, deletes and listings counted in-process against moto's S3 server over HTTP "
                f"(bodies only, no headers); a {REPLY_SECONDS // 2}-second reply of {len(MARKDOWN_REPLY):,} "
                "characters, saved every 5 s; cost at S3 Standard list prices "
                f"({', '.join(f'{k} ${v}' for k, v in model.S3_PRICES.items() if v)} per 1,000, "
                f"{model.S3_PRICES_DATE})",
            )
        )
    return rows


def _requests(figures):
    requests, read, written = figures
    kinds = ", ".join(f"{count} {kind}" for kind, count in requests.items() if count)
    return f"{sum(requests.values())} ({kinds}; {read / 1024:.1f} KB read, {written / 1024:.1f} KB written)"


def threads_of(pid):
    """The number of threads of a process."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))


class Peaks:
    """Samples a worker's memory and threads and Redis's memory every 100 ms in a thread, keeping the most."""

    def __init__(self, worker, redis):
        self.worker, self.redis = worker, redis
        self.rss = self.threads = self.redis_bytes = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self.done.wait(0.1):
            self.rss = max(self.rss, rss_mb(self.worker))
            self.threads = max(self.threads, threads_of(self.worker))
            self.redis_bytes = max(self.redis_bytes, self.redis.info("memory")["used_memory"])

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


def _read_to_done(chat, cid, mid, opened):
    with chat.stream(cid, mid, timeout=120) as response:
        opened.release()
        return any(event.name == "done" for event in read_events(response))


def _wait_compacted(redis, replies, seconds=60):
    """Wait until every reply's log is compacted to its final, title and done (5 s after its end)."""
    deadline = time.monotonic() + seconds
    logs = [f"chatbot:reply:{cid}:{mid}:events" for cid, mid in replies]
    while any(redis.xlen(log) > 3 for log in logs) and time.monotonic() < deadline:
        time.sleep(0.2)


def _idle(server, redis):
    """A worker warmed by one reply: (its pid, {figure: value}) once that reply's log is compacted."""
    chat = HttpChat(server.url)
    cid, mid = chat.start("Warm up.")
    _read_to_done(chat, cid, mid, threading.Semaphore(0))
    _wait_compacted(redis, [(cid, mid)])
    (worker,) = server.worker_pids()
    figures = {"rss": rss_mb(worker), "threads": threads_of(worker), "cpu": cpu_seconds(worker)}
    figures.update(redis=redis.info("memory")["used_memory"], master=rss_mb(server.process.pid))
    return worker, figures


def measure_streams():
    """One gunicorn worker on Redis, idle and then with STREAMS replies streaming at once to GUESTS guests:
    {figure: value} of the idle worker and of the load."""
    pieces = pieces_of(MARKDOWN_REPLY)
    with FakeModelServer(pieces=pieces, interval=0) as fake, RedisServer() as redis_server:
        with deployment(fake, redis_server.url) as server:
            redis = redis_server.client()
            worker, idle = _idle(server, redis)
            fake.interval = REPLY_SECONDS / len(pieces)
            started = [
                (chat, *chat.start("Write a story."))
                for chat in [HttpChat(server.url) for _ in range(GUESTS)]
                for _ in range(STREAMS // GUESTS)
            ]
            opened = threading.Semaphore(0)
            with Peaks(worker, redis) as peaks, ThreadPoolExecutor(STREAMS) as pool:
                results = [pool.submit(_read_to_done, chat, cid, mid, opened) for chat, cid, mid in started]
                all_open = all(opened.acquire(timeout=60) for _ in started)
                done = sum(result.result() for result in results)
            _wait_compacted(redis, [(cid, mid) for _, cid, mid in started])
            after = {"rss": rss_mb(worker), "cpu": cpu_seconds(worker), "redis": redis.info("memory")["used_memory"]}
            redis.close()
    load = {"rss": peaks.rss, "threads": peaks.threads, "redis": peaks.redis_bytes, "all_open": all_open, "done": done}
    return idle, load, after


def stream_rows(idle, load, after):
    """Rows of a worker's memory, threads and CPU per open stream, and Redis memory per reply."""
    per_stream = (load["rss"] - idle["rss"]) / STREAMS
    how = (
        f"one gunicorn worker (gthread, 256 threads) on a real redis-server, rate limits on; {STREAMS} replies of "
        f"{len(MARKDOWN_REPLY):,} characters over {REPLY_SECONDS} s from a fake model server, streaming at once to "
        f"{GUESTS} guests ({load['done']} of {STREAMS} complete, all open at once: {load['all_open']}); "
        "sampled every 100 ms; a shared 2-core machine, loaded by other work"
    )
    return [
        Row(
            "A worker's memory and threads per open stream (its reply being written)",
            f"{per_stream:.2f} MB and {(load['threads'] - idle['threads']) / STREAMS:.1f} threads: idle "
            f"{idle['rss']:.0f} MB, {idle['threads']} threads; {STREAMS} open {load['rss']:.0f} MB, "
            f"{load['threads']} threads (after: {after['rss']:.0f} MB; master {idle['master']:.0f} MB)",
            "—",
            None,
            f"VmRSS and Threads of the worker (a stream's thread, its reply's job and the job's model reader); {how}",
        ),
        Row(
            "A worker's CPU per message and its reply",
            f"{(after['cpu'] - idle['cpu']) / STREAMS * 1000:.0f} ms",
            "—",
            None,
            f"utime + stime of the worker over the {STREAMS} sends, replies (a render event per 100 ms), saves to "
            f"the folder store and compactions; {how}",
        ),
        Row(
            "Redis memory per reply: while written, and once finished",
            f"{(load['redis'] - idle['redis']) / STREAMS / 1024:.1f} KB at the peak, "
            f"{(after['redis'] - idle['redis']) / STREAMS / 1024:.1f} KB once finished",
            "—",
            None,
            f"INFO memory used_memory over an idle Redis ({idle['redis'] / 1024 / 1024:.1f} MB), per reply: its log, "
            f"slots, rate limits and budgets of {GUESTS} guests; {how}",
        ),
    ]


def measured(idle, load, after):
    """The capacity model's inputs from the measurements (the stream cap and connections from the code)."""
    from chatbot.config import DEFAULT_THREADS

    return model.Measured(
        master_mb=idle["master"],
        worker_mb=idle["rss"],
        stream_mb=(load["rss"] - idle["rss"]) / STREAMS,
        cpu_seconds=(after["cpu"] - idle["cpu"]) / STREAMS,
        redis_live_bytes=(load["redis"] - idle["redis"]) / STREAMS,
        redis_finished_bytes=(after["redis"] - idle["redis"]) / STREAMS,
        redis_base_bytes=idle["redis"],
        cap=DEFAULT_THREADS * 4 // 5,
        connections=POOL_SIZE + 1,  # the pool and the reader thread's (bench: connections)
        reply_seconds=ASSUMED_REPLY_SECONDS,
    )


def write_capacity(rows, inputs):
    """Put this run's figures and tables between the capacity markers of bench/RESULTS.md."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    figures = "\n".join(f"- {row.figure}: {row.measured}" for row in rows)
    block = (
        f"Measured {stamp} on {machine()}, by `python -m bench capacity` (the machine shared with other work).\n\n"
        f"{figures}\n\nAssumed: a reply streams for {inputs.reply_seconds:.0f} s; a process per vCPU (2 at least), "
        "vCPUs from Heroku's compute shares (1x taken as 0.16 vCPU, the share a shared dyno is sure of); "
        f"{model.HEADROOM:.0%} of a dyno's memory left free; {inputs.cap} streams a process "
        f"(MAX_OPEN_STREAMS_PER_PROCESS at 256 threads); {inputs.connections} Redis connections a process, "
        f"{model.SPARE_CONNECTIONS} kept for a console.\n\n"
        f"{model.tables(inputs)}\n"
    )
    text = RESULTS.read_text()
    before, rest = text.split(START, 1)
    RESULTS.write_text(f"{before}{START}\n{block}{END}{rest.split(END, 1)[1]}")


@benchmark("capacity")
def capacity(servers):
    """The capacity model: S3 requests and bytes per message and reply, a worker's memory, threads and CPU per
    open stream, Redis memory per reply, and what each dyno size and Key-Value Store plan holds."""
    rows = storage_rows(measure_storage(servers))
    idle, load, after = measure_streams()
    rows += stream_rows(idle, load, after)
    inputs = measured(idle, load, after)
    print(model.tables(inputs), flush=True)
    write_capacity(rows, inputs)
    return rows
