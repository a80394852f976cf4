"""`make bench`: the product against the model server called directly, and against its own growth.

Starts every server it needs on free loopback ports, prints one table, writes
bench/RESULTS.md and bench/growth.png, and puts the table in the README.
Each figure is a median over repeated runs; each comparison is measured side
by side in this one run.
"""

import gzip
import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import fake_model  # noqa: E402
from support import CHROMIUM, CHROMIUM_ARGS, CREDENTIALS, LiveServer, S3Server, free_port  # noqa: E402
from support import build_app as make_app  # noqa: E402
from support import seed_conversations  # noqa: E402

from chatbot.conversations import new_id  # noqa: E402
from chatbot.llm.local import LocalLLM, default_model_path  # noqa: E402

ROWS = []
# The local backend for apps whose model is never called (page weight, growth): it loads lazily, so never here.
UNUSED_MODEL = LocalLLM()


def record(figure, measured, target, met, how):
    """Add a line to the results table; met is True, False or None (no target)."""
    verdict = "—" if met is None else ("yes" if met else "**no**")
    ROWS.append((figure, measured, target, verdict, how))
    print(f"{figure}: {measured} (target {target}, met: {verdict})", flush=True)


def median(values):
    return statistics.median(values)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def wait_for(url, process=None, seconds=60):
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if (process and process.poll() is not None) or time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up")
            time.sleep(0.1)


def start_llama_server(model_path):
    """llama.cpp's server on one thread: the other core is left to the browser and the app,
    which otherwise wait for the model's threads and deliver its tokens late and in bursts."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", model_path, "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048", "--n_threads", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_for(url + "/v1/models", process)
    return process, url


@contextmanager
def gunicorn(**settings):
    """The app under gunicorn as the Procfile runs it (gunicorn.conf.py), in its own processes."""
    port = free_port()
    environment = {**os.environ, "PORT": str(port), "SECRET_KEY": "bench-" + new_id(),
                   "STORAGE_URL": f"file://{tempfile.mkdtemp()}/data",
                   "GUNICORN_CMD_ARGS": "--access-logfile=/dev/null", **settings}
    environment.pop("AWS_ENDPOINT_URL", None)
    server = subprocess.Popen([str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
                              cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/auth/login", server)
        yield server, port
    finally:
        server.terminate()
        server.wait(timeout=20)


# 1. Time to first token -------------------------------------------------------------------------

def direct_stream(base_url, prompt, max_tokens, history=()):
    """Stream a chat completion from the model server; return (time to first piece, piece times)."""
    host, port = base_url.split("//")[1].split(":")
    messages = [*history, {"role": "user", "content": prompt}]
    body = json.dumps({"model": "bench", "stream": True, "temperature": 0, "top_p": 0.7, "seed": 0,
                       "max_tokens": max_tokens, "messages": messages})
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    start = time.perf_counter()
    connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    times = []
    for line in response:
        line = line.strip()
        if line.startswith(b"data: {"):
            delta = json.loads(line[6:])["choices"][0]["delta"]
            if delta.get("content"):
                times.append(time.perf_counter() - start)
    connection.close()
    return times[0], times


WATCH_TOKENS = """() => {
  window.benchTimes = {tokens: []};
  if (window.benchWatching) return;  // listeners once per page, times anew each round
  window.benchWatching = true;
  document.addEventListener('keydown', e => { if (e.key === 'Enter') window.benchTimes.sent = performance.now(); },
                            {capture: true});
  document.addEventListener('htmx:sseMessage', e => {
    if (e.detail.type === 'token') window.benchTimes.tokens.push(performance.now());
  });
}"""

# The same request straight from the page to the model server (llama.cpp's server allows any origin).
BROWSER_DIRECT = """async ([url, prompt, maxTokens]) => {
  const start = performance.now();
  const response = await fetch(url + '/v1/chat/completions', {method: 'POST',
    headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({model: 'bench', stream: true, temperature: 0, top_p: 0.7, seed: 0, max_tokens: maxTokens,
                          messages: [{role: 'user', content: prompt}]})});
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return null;
    if (decoder.decode(value).includes('"content"')) return performance.now() - start;
  }
}"""


def bench_first_token(browser, llama_url, rounds=8, max_tokens=32):
    from playwright.sync_api import expect

    app_first, app_followup, direct_first, direct_followup, browser_direct_first = [], [], [], [], []
    app_gaps, direct_gaps = [], []
    with gunicorn(HF_TOKEN="bench", HF_BASE_URL=llama_url + "/v1", CHATBOT_MODELS="bench",
                  MAX_TOKENS=str(max_tokens)) as (_, port):
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}")
        blank = browser.new_page()  # the app's CSP rightly forbids fetching another origin from its pages
        for number in range(rounds):
            # Distinct prompts of equal length; and since llama.cpp reuses the longest prompt prefix it
            # has just seen, a one-token request of another prompt clears it before each measured one.
            direct_stream(llama_url, "Hi.", 1)
            first, times = direct_stream(llama_url, f"Tell me one fact about the number {100 + 2 * number}.",
                                         max_tokens)
            direct_first.append(first * 1000)
            direct_gaps.append((times[-1] - times[0]) * 1000 / max(1, len(times) - 1))

            direct_stream(llama_url, "Hi.", 1)
            browser_direct_first.append(blank.evaluate(BROWSER_DIRECT, [
                llama_url, f"Tell me one fact about the number {500 + 2 * number}.", max_tokens]))
            direct_stream(llama_url, "Hi.", 1)
            with page.expect_response(lambda response: response.url.endswith("/new")):
                page.get_by_role("link", name="New chat", exact=True).click()
            page.wait_for_function("!document.querySelector('.htmx-request, .htmx-settling')")
            expect(page.get_by_text("How can I help?")).to_be_visible()
            page.evaluate(WATCH_TOKENS)
            composer = page.locator('textarea[name="text"]')
            composer.fill(f"Tell me one fact about the number {101 + 2 * number}.")
            composer.press("Enter")
            expect(page.locator('[data-role="assistant"]')).to_have_attribute("data-status", "done", timeout=60_000)
            # Wait for the title too, so the model server is idle before the next round.
            expect(page.locator("#chat-title")).not_to_have_text("Untitled chat", timeout=60_000)
            times = page.evaluate("window.benchTimes")
            app_first.append(times["tokens"][0] - times["sent"])
            app_gaps.append((times["tokens"][-1] - times["tokens"][0]) / max(1, len(times["tokens"]) - 1))

            # A follow-up in the same conversation: the answer to POST is two bubbles, not the whole pane.
            direct_stream(llama_url, "Hi.", 1)
            page.evaluate(WATCH_TOKENS)
            composer.fill(f"And one fact about the number {201 + 2 * number}?")
            composer.press("Enter")
            expect(page.locator('[data-role="assistant"]')).to_have_count(2)
            expect(page.locator('[data-role="assistant"]').last).to_have_attribute("data-status", "done",
                                                                                   timeout=60_000)
            times = page.evaluate("window.benchTimes")
            app_followup.append(times["tokens"][0] - times["sent"])
            # The same history sent straight to the model server, with a question of the same length.
            exported = page.evaluate("fetch(location.pathname + '/export.json').then(response => response.json())")
            history = [{"role": message["role"], "content": message["content"]}
                       for message in exported["messages"][:2]]
            direct_stream(llama_url, "Hi.", 1)
            first, _ = direct_stream(llama_url, f"And one fact about the number {301 + 2 * number}?", max_tokens,
                                     history)
            direct_followup.append(first * 1000)
        page.close()
    added = median(app_first) - median(direct_first)
    record("Time to first token of a new chat, app (browser send → first text) vs direct",
           f"{median(app_first):.0f} ms vs {median(direct_first):.0f} ms: +{added:.0f} ms",
           "≤ +50 ms", added <= 50,
           f"median of {rounds}; Chromium → gunicorn (Procfile) → HF backend → llama.cpp server, SmolLM2, "
           f"{max_tokens} tokens, distinct prompts alternating with the direct stream")
    followup_added = median(app_followup) - median(direct_followup)
    record("Time to first token of a follow-up message, app vs direct",
           f"{median(app_followup):.0f} ms vs {median(direct_followup):.0f} ms: +{followup_added:.0f} ms",
           "≤ +50 ms", followup_added <= 50,
           "same rounds: a second message in the conversation just created; direct: the same history "
           "and a question of the same length")
    record("Time to first token from the page: through the app vs straight to the model server",
           f"{median(app_first):.0f} ms vs {median(browser_direct_first):.0f} ms: "
           f"+{median(app_first) - median(browser_direct_first):.0f} ms", "—", None,
           "same rounds; the direct one is a streaming fetch() from the page (one round trip where the app "
           "makes two: POST the message, then open the reply's event stream)")
    record("Time per token after the first, app vs direct",
           f"{median(app_gaps):.1f} ms vs {median(direct_gaps):.1f} ms", "—", None,
           "same runs; app: htmx SSE token events in the page; direct: streamed chunks")


# 2. Page weight ----------------------------------------------------------------------------------

def bench_page_weight(browser):
    app = make_app(Path(tempfile.mkdtemp()), UNUSED_MODEL)
    with LiveServer(app) as server:
        context = browser.new_context()
        page = context.new_page()
        responses = []
        page.on("response", lambda response: responses.append(response))
        page.goto(server.url, wait_until="networkidle")
        raw = zipped = script = 0
        for response in responses:
            body = response.body()
            raw += len(body)
            size = len(gzip.compress(body, 6))
            zipped += size
            if "javascript" in response.headers.get("content-type", ""):
                script += size
        context.close()
    record("First visit: requests, bytes raw / gzip", f"{len(responses)} requests, {raw / 1024:.1f} KB / "
           f"{zipped / 1024:.1f} KB", "≤ 60 KB gzip", zipped <= 60 * 1024,
           "Chromium loads / (empty chat) with a cold cache; gzip level 6 of each body")
    record("First visit: JavaScript gzip", f"{script / 1024:.1f} KB", "≤ 20 KB gzip", script <= 20 * 1024,
           "htmx, its SSE extension, app.js")


# 3. Growth with conversations, 4. growth with messages -------------------------------------------

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
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        durations.append((time.perf_counter() - start) * 1000)
    return median(durations)


def storage_urls(s3):
    bucket = "bench-" + new_id().lower().replace("_", "a").replace("-", "b")
    s3.client().create_bucket(Bucket=bucket)
    return {"folder": f"file://{tempfile.mkdtemp()}/data", "s3": f"s3://{bucket}/chatbot"}


def guest_client(app, uid):
    client = app.test_client()
    with client.session_transaction() as session:
        session["guest_uid"] = uid
    return client


def bench_growth(s3, sizes=(10, 100, 1000, 10000)):
    results = {}
    for backend, url in storage_urls(s3).items():
        app = make_app(Path(tempfile.mkdtemp()), UNUSED_MODEL, STORAGE_URL=url)
        for size in sizes:
            uid = new_id()
            entries = seed_conversations(app.extensions["store"], uid, size, write_conversations=False)
            client = guest_client(app, uid)
            path = f"/c/{entries[0]['id']}"
            counting = app.extensions["store"] = CountingStore(app.extensions["store"])
            assert client.get(path).status_code == 200
            requests = counting.count
            app.extensions["store"] = counting.store
            milliseconds = timed(lambda: client.get(path), 15)
            results[(backend, size)] = (requests, milliseconds)
            print(f"  {backend} {size} conversations: {requests} requests, {milliseconds:.1f} ms", flush=True)
    for backend in ("folder", "s3"):
        requests = [results[(backend, size)][0] for size in sizes]
        times = [results[(backend, size)][1] for size in sizes]
        ratio = times[-1] / times[0]
        record(f"Page view at {', '.join(f'{size:,}' for size in sizes)} conversations ({backend})",
               f"{' / '.join(map(str, requests))} requests; "
               f"{' / '.join(f'{value:.1f}' for value in times)} ms ({ratio:.1f}×)",
               "requests constant; time ≤ 2×", len(set(requests)) == 1 and ratio <= 2,
               "server time of GET /c/<id> through the test client, median of 15; "
               + ("moto S3 server over HTTP" if backend == "s3" else "folder store"))
    plot(results, sizes)
    return results


def plot(results, sizes):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3), dpi=100)
    for backend in ("folder", "s3"):
        axis.plot(sizes, [results[(backend, size)][1] for size in sizes], marker="o", label=backend)
    axis.set_xscale("log")
    axis.set_xlabel("conversations")
    axis.set_ylabel("page view, ms")
    axis.set_ylim(bottom=0)
    axis.legend()
    axis.set_title("Page view time vs conversations")
    figure.tight_layout()
    figure.savefig(ROOT / "bench" / "growth.png")


def bench_send(s3, sizes=(10, 100, 1000)):
    for backend, url in storage_urls(s3).items():
        app = make_app(Path(tempfile.mkdtemp()), UNUSED_MODEL, STORAGE_URL=url)
        times = []
        for size in sizes:
            uid = new_id()
            [entry] = seed_conversations(app.extensions["store"], uid, 1, messages=size)
            client = guest_client(app, uid)
            times.append(timed(lambda: client.post(f"/c/{entry['id']}/messages", data={"text": "Another question"},
                                                   headers={"HX-Request": "true"}), 10))
        record(f"Send on {', '.join(map(str, sizes))}-message conversations ({backend})",
               " / ".join(f"{value:.1f} ms" for value in times), "≤ 50 ms at 1,000", times[-1] <= 50,
               "server time of POST /c/<id>/messages (store message + pending reply, update index, render), "
               "model excluded, median of 10")


# 5. Load under gunicorn, 6. memory ---------------------------------------------------------------

def rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


class Guest:
    """A browser-less guest of the gunicorn server: a session cookie and the CSRF token."""

    def __init__(self, port):
        self.port = port
        response = self.request("GET", "/")
        self.cookie = response.getheader("Set-Cookie").split(";")[0]
        self.token = re.search(r'"X-CSRFToken": "([^"]+)"', response.read().decode()).group(1)

    def request(self, method, path, body=None, headers=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        all_headers = dict(headers or {})
        if getattr(self, "cookie", None):
            all_headers.update({"Cookie": self.cookie, "X-CSRFToken": self.token})
        connection.request(method, path, body, all_headers)
        return connection.getresponse()

    def start(self, text):
        """Start a conversation; return (its path, the reply's stream path)."""
        response = self.request("POST", "/new", f"text={text}", {
            "Content-Type": "application/x-www-form-urlencoded", "HX-Request": "true"})
        html = response.read().decode()
        return response.getheader("HX-Push-Url"), re.search(r'sse-connect="([^"]+)"', html).group(1)

    def read_stream(self, path):
        """Read an event stream to its end; return True when the reply finished as done."""
        body = self.request("GET", path).read().decode()
        return 'data-status="done"' in body and body.rstrip().endswith("event: done\ndata:")


def bench_gunicorn(streams=50):
    model_port = free_port()
    fake = fake_model.start(model_port)
    with gunicorn(HF_TOKEN="bench", HF_BASE_URL=f"http://127.0.0.1:{model_port}/v1",
                  CHATBOT_MODELS="bench") as (server, port):
        guest = Guest(port)
        page, stream = guest.start("hello")
        assert guest.read_stream(stream)

        output = subprocess.run(["wrk", "-t2", "-c16", "-d8s", "-H", f"Cookie: {guest.cookie}",
                                 f"http://127.0.0.1:{port}{page}"], capture_output=True, text=True).stdout
        per_second = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
        workers = os.environ.get("WEB_CONCURRENCY", "2")
        record("Page views per second under gunicorn", f"{per_second:.0f} /s", "≥ 500 /s", per_second >= 500,
               f"wrk -t2 -c16 -d8s on GET /c/<id>, gunicorn.conf.py (gthread, {workers} workers), same machine")

        pending = [guest.start(f"question {number}")[1] for number in range(streams)]
        outcomes, latencies = [], []
        readers = [threading.Thread(target=lambda path=path: outcomes.append(guest.read_stream(path)))
                   for path in pending]
        for reader in readers:
            reader.start()
        while any(reader.is_alive() for reader in readers):
            start = time.perf_counter()
            guest.request("GET", page).read()
            latencies.append((time.perf_counter() - start) * 1000)
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        dropped = streams - sum(outcomes)
        record(f"Page views while {streams} replies stream", f"p50 {p50:.0f} ms, p99 {p99:.0f} ms; "
               f"{dropped} of {streams} streams dropped", "p99 < 200 ms; none dropped",
               p99 < 200 and dropped == 0,
               f"{len(latencies)} sequential page views during {streams} SSE replies from a fast fake model "
               f"server ({fake_model.WORDS} pieces at {fake_model.INTERVAL * 1000:.0f} ms)")
        worker_rss = max(rss_mb(pid) for pid in children(server.pid))
        record("Resident memory of one worker, Hugging Face backend", f"{worker_rss:.0f} MB", "≤ 150 MB",
               worker_rss <= 150, "VmRSS of the largest gunicorn worker after the load above")
    fake.shutdown()


def bench_local_memory():
    code = (
        "import sys; sys.path[:0] = ['.', 'tests'];"
        "from support import build_app as make_app; from chatbot.llm.local import LocalLLM; from pathlib import Path;"
        "import tempfile; app = make_app(Path(tempfile.mkdtemp()), LocalLLM());"
        "llm = app.extensions['llm']; print(''.join(llm.stream([{'role': 'user', 'content': 'hi'}], max_tokens=8)));"
        "print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])"
    )
    output = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout.split()
    record("Resident memory of one process with the local model loaded", f"{int(output[-1]) / 1024:.0f} MB",
           "—", None, "VmRSS after loading SmolLM2-135M (Q4_1) and generating 8 tokens")


# Report ------------------------------------------------------------------------------------------

def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def table():
    lines = ["| figure | measured | target | met | how |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in ROWS]
    return "\n".join(lines)


def write_report(seconds):
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    summary = (f"Measured {stamp} on {machine()}, by `make bench` in {seconds:.0f} s.\n\n{table()}\n\n"
               "![Page view time against conversations](bench/growth.png)\n")
    (ROOT / "bench" / "RESULTS.md").write_text("# Benchmark results\n\n" + summary.replace("bench/growth.png",
                                                                                        "growth.png"))
    readme = (ROOT / "README.md").read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start in readme and end in readme:
        before, rest = readme.split(start, 1)
        readme = before + start + "\n" + summary + end + rest.split(end, 1)[1]
        (ROOT / "README.md").write_text(readme)


def main():
    from playwright.sync_api import sync_playwright

    started = time.monotonic()
    os.environ.update(CREDENTIALS)
    model_path = default_model_path()
    s3 = S3Server().start()
    llama, llama_url = start_llama_server(model_path)
    os.environ["AWS_ENDPOINT_URL"] = s3.url
    try:
        chosen = set(sys.argv[1:]) or {"ttft", "weight", "growth", "send", "load", "memory"}
        if chosen & {"ttft", "weight"}:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                if "ttft" in chosen:
                    bench_first_token(browser, llama_url)
                if "weight" in chosen:
                    bench_page_weight(browser)
                browser.close()
        if "growth" in chosen:
            bench_growth(s3)
        if "send" in chosen:
            bench_send(s3)
        if "load" in chosen:
            bench_gunicorn()
        if "memory" in chosen:
            bench_local_memory()
    finally:
        llama.terminate()
        s3.stop()
    print()
    print(table())
    if not sys.argv[1:]:  # only a full run replaces the recorded results
        write_report(time.monotonic() - started)
        print("\nWritten: bench/RESULTS.md, bench/growth.png, README.md")


if __name__ == "__main__":
    main()
