"""Load under gunicorn (page views per second, page views while replies stream) and memory."""

import http.client
import os
import re
import subprocess
import sys
import threading
import time

from support import ROOT, FakeModelServer

from .registry import Row, benchmark, percentile
from .servers import bench_gunicorn

STREAMS = 200
GUESTS = 20  # the streams come from this many guests, 10 each
REPLY_SECONDS = 12  # long enough for every stream to be open at once while the messages are sent


def rss_mb(pid):
    """The resident memory of a process, in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Guest:
    """A browser-less guest of the gunicorn server: a session cookie and the CSRF token."""

    def __init__(self, port):
        self.port = port
        self.cookie = self.token = None
        response = self.request("GET", "/")
        self.cookie = response.getheader("Set-Cookie").split(";")[0]
        self.token = re.search(r'"X-CSRFToken": "([^"]+)"', response.read().decode()).group(1)

    def request(self, method, path, body=None, headers=None):
        """Send one request on a new connection; return the response."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        all_headers = dict(headers or {})
        if self.cookie:
            all_headers.update({"Cookie": self.cookie, "X-CSRFToken": self.token})
        connection.request(method, path, body, all_headers)
        return connection.getresponse()

    def start(self, text):
        """Start a conversation; return (its path, the reply's stream path)."""
        headers = {"Content-Type": "application/x-www-form-urlencoded", "HX-Request": "true"}
        response = self.request("POST", "/new", f"text={text}", headers)
        html = response.read().decode()
        return response.getheader("HX-Push-Url"), re.search(r'sse-connect="([^"]+)"', html).group(1)

    def read_stream(self, path):
        """Read an event stream to its end; return True when the reply finished as done."""
        body = self.request("GET", path).read().decode()
        return 'data-status="done"' in body and body.rstrip().endswith("event: done\ndata:")


def page_views_per_second(server, cookie, page):
    """wrk's requests per second on one page, with the guest's cookie."""
    command = ["wrk", "-t2", "-c16", "-d8s", "-H", f"Cookie: {cookie}", server.url + page]
    output = subprocess.run(command, capture_output=True, text=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))


class OpenStreams:
    """Reads event streams in threads, counting how many are open at once."""

    def __init__(self):
        self.outcomes, self.open, self.most = [], 0, 0
        self._lock = threading.Lock()
        self.threads = []

    def read(self, guest, path):
        """Read one stream to its end in a thread of its own."""

        def reader():
            with self._lock:
                self.open += 1
                self.most = max(self.most, self.open)
            self.outcomes.append(guest.read_stream(path))
            with self._lock:
                self.open -= 1

        self.threads.append(threading.Thread(target=reader))
        self.threads[-1].start()

    def reading(self):
        """True while any stream is still open."""
        return any(thread.is_alive() for thread in self.threads)


def page_views_while_streaming(guest, page, streams, port):
    """Send `streams` messages from GUESTS guests and read each reply's stream at once, while guest views
    page in a loop; return (view latencies in ms, streams dropped, most streams open at once).

    Several guests, as in use: one user may have only a few replies being written at once
    (MAX_REPLIES_AT_ONCE), and each user's replies update that user's index."""
    writers = [Guest(port) for _ in range(GUESTS)]
    readers, latencies = OpenStreams(), []
    for number in range(streams):
        writer = writers[number % GUESTS]
        readers.read(writer, writer.start(f"question {number}")[1])
    while readers.reading():
        start = time.perf_counter()
        guest.request("GET", page).read()
        latencies.append((time.perf_counter() - start) * 1000)
    return latencies, streams - sum(readers.outcomes), readers.most


@benchmark("load")
def load(servers):
    """gunicorn (as the Procfile runs it) against a fast fake model server: throughput, latency under
    streaming replies, a worker's memory."""
    # A FAKE model: 40 pieces over REPLY_SECONDS, so the load falls on the app.
    with FakeModelServer(interval=REPLY_SECONDS / 40) as fake:
        with bench_gunicorn(
            HF_TOKEN="bench", HF_BASE_URL=fake.url, CHATBOT_MODELS="fake-model", MAX_REPLIES_AT_ONCE="1000"
        ) as server:
            guest = Guest(server.port)
            page, stream = guest.start("hello")
            assert guest.read_stream(stream)
            per_second = page_views_per_second(server, guest.cookie, page)
            latencies, dropped, most = page_views_while_streaming(guest, page, STREAMS, server.port)
            worker_rss = max(rss_mb(pid) for pid in server.worker_pids())
    # gunicorn.conf.py runs one process without REDIS_URL (a reply's stream must reach its process).
    workers = os.environ.get("WEB_CONCURRENCY", "2") if os.environ.get("REDIS_URL") else "1"
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    return [
        Row(
            "Page views per second under gunicorn",
            f"{per_second:.0f} /s",
            "≥ 500 /s",
            per_second >= 500,
            f"wrk -t2 -c16 -d8s on GET /c/<id>, gunicorn.conf.py (gthread, {workers} worker(s), 256 threads), "
            "same machine",
        ),
        Row(
            f"Page views while {STREAMS} replies stream",
            f"p50 {p50:.0f} ms, p99 {p99:.0f} ms; {most} streams open at once; {dropped} of {STREAMS} dropped",
            "p99 < 200 ms; none dropped",
            p99 < 200 and dropped == 0,
            f"{len(latencies)} sequential page views during {STREAMS} SSE replies of {GUESTS} guests from a fast "
            f"fake model server ({len(fake.pieces)} pieces at {fake.interval * 1000:.0f} ms)",
        ),
        Row(
            "Resident memory of one worker, Hugging Face backend",
            f"{worker_rss:.0f} MB",
            "≤ 150 MB",
            worker_rss <= 150,
            "VmRSS of the largest gunicorn worker after the load above",
        ),
    ]


# Run in a fresh process, so that nothing else this run loaded counts.
LOCAL_MEMORY = """
import tempfile
from pathlib import Path

from chatbot.llm.local import LocalLLM
from support import build_app

app = build_app(Path(tempfile.mkdtemp()), LocalLLM())
print("".join(app.extensions["llm"].stream([{"role": "user", "content": "hi"}], max_tokens=8)))
print([line for line in open("/proc/self/status") if line.startswith("VmRSS")][0].split()[1])
"""


@benchmark("memory")
def local_memory(servers):
    """Resident memory of a process with the local model loaded."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    output = subprocess.run(
        [sys.executable, "-c", LOCAL_MEMORY], cwd=ROOT, capture_output=True, text=True, env=environment
    ).stdout.split()
    return [
        Row(
            "Resident memory of one process with the local model loaded",
            f"{int(output[-1]) / 1024:.0f} MB",
            "—",
            None,
            "VmRSS after loading SmolLM2-135M (Q4_1) and generating 8 tokens",
        )
    ]
