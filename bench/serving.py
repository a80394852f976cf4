"""Load under gunicorn (page views per second, page views while replies stream) and memory."""

import http.client
import os
import re
import subprocess
import sys
import threading
import time

from support import ROOT

from . import fake_model
from .registry import Row, benchmark, percentile
from .servers import bench_gunicorn

STREAMS = 200


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


def page_views_while_streaming(guest, page, streams):
    """Read streams replies at once while viewing page in a loop; return (view latencies in ms, dropped)."""
    pending = [guest.start(f"question {number}")[1] for number in range(streams)]
    outcomes, latencies = [], []
    readers = [threading.Thread(target=lambda path=path: outcomes.append(guest.read_stream(path))) for path in pending]
    for reader in readers:
        reader.start()
    while any(reader.is_alive() for reader in readers):
        start = time.perf_counter()
        guest.request("GET", page).read()
        latencies.append((time.perf_counter() - start) * 1000)
    return latencies, streams - sum(outcomes)


@benchmark("load")
def load(servers):
    """gunicorn (as the Procfile runs it) against a fast fake model server: throughput, latency under
    streaming replies, a worker's memory."""
    fake = fake_model.start()
    model_url = f"http://127.0.0.1:{fake.server_port}/v1"
    try:
        with bench_gunicorn(
            HF_TOKEN="bench", HF_BASE_URL=model_url, CHATBOT_MODELS="bench", MAX_REPLIES_AT_ONCE="1000"
        ) as server:
            guest = Guest(server.port)
            page, stream = guest.start("hello")
            assert guest.read_stream(stream)
            per_second = page_views_per_second(server, guest.cookie, page)
            latencies, dropped = page_views_while_streaming(guest, page, STREAMS)
            worker_rss = max(rss_mb(pid) for pid in server.worker_pids())
    finally:
        fake.shutdown()
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
            f"p50 {p50:.0f} ms, p99 {p99:.0f} ms; {dropped} of {STREAMS} streams dropped",
            "p99 < 200 ms; none dropped",
            p99 < 200 and dropped == 0,
            f"{len(latencies)} sequential page views during {STREAMS} SSE replies from a fast fake model "
            f"server ({fake_model.WORDS} pieces at {fake_model.INTERVAL * 1000:.0f} ms)",
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
