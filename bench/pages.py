"""Page weight in Chromium, and how page views and sends grow with conversations and messages."""

import gzip
import tempfile
import time

from chatbot.conversations import new_id
from support import ROOT, as_guest, bucket_name, seed_conversations

from .registry import Row, benchmark, median
from .servers import bench_app, bench_gunicorn

GROWTH_SIZES = (10, 100, 1000, 10000)
SEND_SIZES = (10, 100, 1000)


@benchmark("weight")
def page_weight(servers):
    """Bytes and requests of a first visit with a cold cache, as the production server sends them."""
    # No model is called on a first visit: the model settings only let the app start as in production.
    with bench_gunicorn(HF_TOKEN="bench", HF_BASE_URL="http://127.0.0.1:9/v1", CHATBOT_MODELS="bench") as server:
        context = servers.browser.new_context()
        page = context.new_page()
        responses = []
        page.on("response", lambda response: responses.append(response))
        page.goto(server.url, wait_until="networkidle")
        raw = zipped = sent = script_zipped = script_sent = 0
        for response in responses:
            body = response.body()
            raw += len(body)
            size = len(gzip.compress(body, 6))
            zipped += size
            encoded = response.request.sizes()["responseBodySize"]  # the body as it crossed the wire
            sent += encoded
            if "javascript" in response.headers.get("content-type", ""):
                script_zipped += size
                script_sent += encoded
        encodings = sorted({response.headers.get("content-encoding", "none") for response in responses})
        context.close()
    return [
        Row(
            "First visit: requests, bytes raw / sent / gzip",
            f"{len(responses)} requests, {raw / 1024:.1f} KB / {sent / 1024:.1f} KB / {zipped / 1024:.1f} KB",
            "≤ 60 KB gzip",
            zipped <= 60 * 1024,
            f"Chromium loads / (empty chat) from gunicorn with a cold cache; sent: the bodies as encoded by the app "
            f"({', '.join(encodings)}); gzip: level 6 of each body",
        ),
        Row(
            "First visit: JavaScript sent / gzip",
            f"{script_sent / 1024:.1f} KB / {script_zipped / 1024:.1f} KB",
            "≤ 20 KB sent",
            script_sent <= 20 * 1024,
            "htmx, its SSE extension, app.js, as the app sends them (Brotli to Chromium; gzip level 6 for "
            "a browser without Brotli)",
        ),
    ]


class CountingStore:
    """Counts the operations a request makes on a Store (each is one request on S3)."""

    def __init__(self, store):
        self.store, self.count = store, 0

    def __getattr__(self, name):
        attribute = getattr(self.store, name)
        if name in ("read", "write", "delete"):

            def counted(*args, **kwargs):
                self.count += 1
                return attribute(*args, **kwargs)

            return counted
        return attribute


def timed(call, repeats):
    """The median duration of call(), in milliseconds."""
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        durations.append((time.perf_counter() - start) * 1000)
    return median(durations)


def storage_urls(s3):
    """A fresh folder store and a fresh bucket on the S3 server, by backend name."""
    bucket = bucket_name("bench")
    s3.client().create_bucket(Bucket=bucket)
    return {"folder": f"file://{tempfile.mkdtemp()}/data", "s3": f"s3://{bucket}/chatbot"}


def page_view(app, size):
    """Seed size conversations for a new guest; return (store requests, median ms) of a view of the newest."""
    uid = new_id()
    entries = seed_conversations(app.extensions["store"], uid, size, write_conversations=False)
    client = as_guest(app.test_client(), uid)
    path = f"/c/{entries[0]['id']}"
    counting = app.extensions["store"] = CountingStore(app.extensions["store"])
    assert client.get(path).status_code == 200
    app.extensions["store"] = counting.store
    return counting.count, timed(lambda: client.get(path), 15)


def plot(times_by_backend):
    """Draw page view time against conversations, one line a backend, into bench/growth.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3), dpi=100)
    for backend, times in times_by_backend.items():
        axis.plot(GROWTH_SIZES, times, marker="o", label=backend)
    axis.set_xscale("log")
    axis.set_xlabel("conversations")
    axis.set_ylabel("page view, ms")
    axis.set_ylim(bottom=0)
    axis.legend()
    axis.set_title("Page view time vs conversations")
    figure.tight_layout()
    figure.savefig(ROOT / "bench" / "growth.png")


@benchmark("growth")
def growth(servers):
    """Store requests and server time of a page view at 10 to 10,000 conversations, folder and S3."""
    rows, times_by_backend = [], {}
    for backend, url in storage_urls(servers.s3).items():
        app = bench_app(STORAGE_URL=url)
        requests, times = [], []
        for size in GROWTH_SIZES:
            count, milliseconds = page_view(app, size)
            requests.append(count)
            times.append(milliseconds)
            print(f"  {backend} {size} conversations: {count} requests, {milliseconds:.1f} ms", flush=True)
        times_by_backend[backend] = times
        ratio = times[-1] / times[0]
        rows.append(
            Row(
                f"Page view at {', '.join(f'{size:,}' for size in GROWTH_SIZES)} conversations ({backend})",
                f"{' / '.join(map(str, requests))} requests; "
                f"{' / '.join(f'{value:.1f}' for value in times)} ms ({ratio:.1f}×)",
                "requests constant; time ≤ 2×",
                len(set(requests)) == 1 and ratio <= 2,
                "server time of GET /c/<id> through the test client, median of 15; "
                + ("moto S3 server over HTTP" if backend == "s3" else "folder store"),
            )
        )
    plot(times_by_backend)
    return rows


def send_time(app, size):
    """The median server time (ms) of a send on a conversation of size messages."""
    uid = new_id()
    [entry] = seed_conversations(app.extensions["store"], uid, 1, messages=size)
    client = as_guest(app.test_client(), uid)
    path = f"/c/{entry['id']}/messages"
    return timed(lambda: client.post(path, data={"text": "Another question"}, headers={"HX-Request": "true"}), 10)


@benchmark("send")
def send(servers):
    """Server time of a send on 10- to 1,000-message conversations, folder and S3."""
    rows = []
    for backend, url in storage_urls(servers.s3).items():
        app = bench_app(STORAGE_URL=url)
        times = [send_time(app, size) for size in SEND_SIZES]
        rows.append(
            Row(
                f"Send on {', '.join(map(str, SEND_SIZES))}-message conversations ({backend})",
                " / ".join(f"{value:.1f} ms" for value in times),
                "≤ 50 ms at 1,000",
                times[-1] <= 50,
                "server time of POST /c/<id>/messages (store message + pending reply, update index, render), "
                "model excluded, median of 10",
            )
        )
    return rows
