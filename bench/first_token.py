"""Time to first token: the app in Chromium (through gunicorn and the HF backend) against llama.cpp called directly."""

import http.client
import json
import time
from dataclasses import dataclass, fields

from .registry import Row, benchmark, median
from .servers import bench_gunicorn

ROUNDS = 8
MAX_TOKENS = 32

# Installed in the app's page: the time of the Enter that sends, and of each token event.
WATCH_TOKENS = """() => {
  window.benchTimes = {tokens: []};
  if (window.benchWatching) return;  // listeners once per page, times anew each round
  window.benchWatching = true;
  document.addEventListener('keydown', e => { if (e.key === 'Enter') window.benchTimes.sent = performance.now(); },
                            {capture: true});
  // The reply's text arrives as render events (app.js applies them, so htmx:sseMessage never fires for them).
  document.addEventListener('htmx:sseBeforeMessage', e => {
    if (e.detail.type === 'render') window.benchTimes.tokens.push(performance.now());
  }, {capture: true});
}"""

# The same request straight from a page to the model server (llama.cpp's server allows any origin).
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


@dataclass
class Round:
    """What one round measures, in milliseconds."""

    app_first: float  # a new chat: Enter in the page to its first token event
    direct_first: float  # the same kind of prompt streamed straight from llama.cpp's server
    browser_direct_first: float  # the same, as a streaming fetch() from a page
    app_followup: float  # a second message in that chat
    direct_followup: float  # the same history and a question of the same length, straight to the server
    app_gap: float  # mean time between the app's token events
    direct_gap: float  # mean time between the server's streamed pieces


def direct_stream(base_url, prompt, max_tokens, history=()):
    """Stream a chat completion from the model server; return the times (s) of its text pieces."""
    host, port = base_url.split("//")[1].split(":")
    messages = [*history, {"role": "user", "content": prompt}]
    body = json.dumps(
        {
            "model": "bench",
            "stream": True,
            "temperature": 0,
            "top_p": 0.7,
            "seed": 0,
            "max_tokens": max_tokens,
            "messages": messages,
        }
    )
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    start = time.perf_counter()
    connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    times = []
    for line in connection.getresponse():
        line = line.strip()
        if line.startswith(b"data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
            times.append(time.perf_counter() - start)
    connection.close()
    return times


def clear_prefix_cache(llama_url):
    """llama.cpp reuses the longest prompt prefix it has just seen: a one-token request of another prompt
    clears it, so whichever side runs second does not get the other's prompt for free."""
    direct_stream(llama_url, "Hi.", 1)


def mean_gap(times):
    """The mean time between consecutive pieces."""
    return (times[-1] - times[0]) / max(1, len(times) - 1)


def send_in_page(page, text):
    """Type text in the app's composer, press Enter, wait for the reply; return the page's token times (ms)."""
    from playwright.sync_api import expect

    replies = page.locator('[data-role="assistant"]')
    before = replies.count()
    page.evaluate(WATCH_TOKENS)
    composer = page.locator('textarea[name="text"]')
    composer.fill(text)
    composer.press("Enter")
    expect(replies).to_have_count(before + 1)
    expect(replies.last).to_have_attribute("data-status", "done", timeout=60_000)
    times = page.evaluate("window.benchTimes")
    return [token - times["sent"] for token in times["tokens"]]


def open_new_chat(page):
    """Click New chat and wait until its empty pane has settled."""
    from playwright.sync_api import expect

    with page.expect_response(lambda response: response.url.endswith("/new")):
        page.get_by_role("link", name="New chat", exact=True).click()
    page.wait_for_function("!document.querySelector('.htmx-request, .htmx-settling')")
    expect(page.get_by_text("How can I help?")).to_be_visible()


def one_round(number, page, blank, llama_url):
    """Alternate the direct and the app's requests with distinct prompts of equal length; return the Round."""
    from playwright.sync_api import expect

    clear_prefix_cache(llama_url)
    direct = direct_stream(llama_url, f"Tell me one fact about the number {100 + 2 * number}.", MAX_TOKENS)

    clear_prefix_cache(llama_url)
    browser_direct_first = blank.evaluate(
        BROWSER_DIRECT, [llama_url, f"Tell me one fact about the number {500 + 2 * number}.", MAX_TOKENS]
    )

    clear_prefix_cache(llama_url)
    open_new_chat(page)
    app = send_in_page(page, f"Tell me one fact about the number {101 + 2 * number}.")
    # Wait for the title too, so the model server is idle before the next request.
    expect(page.locator("#chat-title")).not_to_have_text("Untitled chat", timeout=60_000)

    # A follow-up: the answer to the POST is two bubbles, not the whole pane.
    clear_prefix_cache(llama_url)
    followup = send_in_page(page, f"And one fact about the number {201 + 2 * number}?")
    exported = page.evaluate("fetch(location.pathname + '/export.json').then(response => response.json())")
    history = [{"role": message["role"], "content": message["content"]} for message in exported["messages"][:2]]
    clear_prefix_cache(llama_url)
    question = f"And one fact about the number {301 + 2 * number}?"
    direct_followup = direct_stream(llama_url, question, MAX_TOKENS, history)

    return Round(
        app_first=app[0],
        direct_first=direct[0] * 1000,
        browser_direct_first=browser_direct_first,
        app_followup=followup[0],
        direct_followup=direct_followup[0] * 1000,
        app_gap=mean_gap(app),
        direct_gap=mean_gap(direct) * 1000,
    )


def medians(rounds):
    """The median of each of Round's figures over the rounds, as a Round."""
    return Round(**{field.name: median(getattr(each, field.name) for each in rounds) for field in fields(Round)})


def rows(typical):
    """The table's rows for the medians of the rounds."""
    added, followup_added = typical.app_first - typical.direct_first, typical.app_followup - typical.direct_followup
    return [
        Row(
            "Time to first token of a new chat, app (browser send → first text) vs direct",
            f"{typical.app_first:.0f} ms vs {typical.direct_first:.0f} ms: +{added:.0f} ms",
            "≤ +20 ms",
            added <= 20,
            f"median of {ROUNDS}; Chromium → gunicorn (Procfile) → HF backend → llama.cpp server, SmolLM2, "
            f"{MAX_TOKENS} tokens, distinct prompts alternating with the direct stream",
        ),
        Row(
            "Time to first token of a follow-up message, app vs direct",
            f"{typical.app_followup:.0f} ms vs {typical.direct_followup:.0f} ms: +{followup_added:.0f} ms",
            "≤ +20 ms",
            followup_added <= 20,
            "same rounds: a second message in the conversation just created; direct: the same history "
            "and a question of the same length",
        ),
        Row(
            "Time to first token from the page: through the app vs straight to the model server",
            f"{typical.app_first:.0f} ms vs {typical.browser_direct_first:.0f} ms: "
            f"+{typical.app_first - typical.browser_direct_first:.0f} ms",
            "—",
            None,
            "same rounds; the direct one is a streaming fetch() from the page (the app starts the model when "
            "the message is posted; the page then opens the reply's event stream)",
        ),
        Row(
            "Time between updates after the first, app vs direct",
            f"{typical.app_gap:.1f} ms vs {typical.direct_gap:.1f} ms",
            "—",
            None,
            "same runs; app: render events in the page (pieces within 100 ms are rendered together); "
            "direct: streamed chunks",
        ),
    ]


@benchmark("ttft")
def first_token(servers):
    """Time to first token of a new chat and of a follow-up, and time per token, app against direct."""
    llama_url = servers.llama_url
    settings = {"HF_TOKEN": "bench", "HF_BASE_URL": llama_url + "/v1", "CHATBOT_MODELS": "bench"}
    with bench_gunicorn(**settings, MAX_TOKENS=str(MAX_TOKENS)) as server:
        # The page's CSP forbids eval, which Playwright's waits use: bypassed for the harness, not the app's code.
        page = servers.browser.new_page(bypass_csp=True)
        page.goto(server.url)
        blank = servers.browser.new_page()  # the app's CSP rightly forbids fetching another origin from its pages
        rounds = [one_round(number, page, blank, llama_url) for number in range(ROUNDS)]
        page.close()
        blank.close()
        job_firsts = [
            json.loads(line)["ttft_ms"]
            for line in server.output().splitlines()
            if line.startswith("{") and '"event": "reply"' in line and '"ttft_ms": null' not in line
        ]
    typical = medians(rounds)
    new_chats = job_firsts[0::2]  # each round logs a new chat's reply, then a follow-up's
    return rows(typical) + [
        Row(
            "Where the time goes: a new chat's first piece inside the app, from its job's start",
            f"{median(new_chats):.0f} ms (the model called directly: {typical.direct_first:.0f} ms)",
            "—",
            None,
            f"median of {len(new_chats)}, from the app's reply log lines (ttft_ms): the model itself answers later "
            "while the browser works on the same 2 cores; the POST, the swap and the event stream's connection "
            "happen in parallel with it",
        )
    ]
