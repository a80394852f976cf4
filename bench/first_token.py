"""Time to first token, timed inside Chromium: the app's page against a plain page streaming the same model.

Both sides talk to the same FAKE model server (tests/support/fake_model.py), which sleeps FIRST_DELAY before its
first piece without using CPU, so the figure is what the app adds, not the model. Each side is timed by the page's
own listeners, from the Enter keydown to the first text in the reply's content area (a MutationObserver); the
results are read only after the first text is shown (Playwright's evaluate and waits run a large script in the
page, which would hold its main thread during the round), and the page says when that is with a console message.
"""

from dataclasses import dataclass

from support import FakeModelServer

from .registry import Row, benchmark, median
from .servers import bench_gunicorn

ROUNDS = 20  # a median of 20 against 40: a single run on a shared machine moves by several ms
FIRST_DELAY = 0.04  # seconds the fake model waits before its first piece
PIECES = [f"word{number} " for number in range(8)]
TIMELINE = ("response", "swap", "connect", "open", "event", "text")

# The app's page: the times of the round's steps, in ms after performance.timeOrigin. Installed once per page,
# reset each round. EventSource is wrapped to see when the reply's stream is created and opens.
WATCH_APP = """() => {
  window.benchTimes = {replies: document.querySelectorAll('[data-role="assistant"]').length};
  if (window.benchWatching) return;
  window.benchWatching = true;
  const first = (name) => {
    if (window.benchTimes[name] === undefined) window.benchTimes[name] = performance.now();
  };
  document.addEventListener('keydown', e => { if (e.key === 'Enter') first('keydown'); }, {capture: true});
  document.addEventListener('htmx:afterSwap', e => { if (e.detail.target.id === 'messages') first('swap'); },
                            {capture: true});
  document.addEventListener('htmx:sseBeforeMessage', e => { if (e.detail.type === 'render') first('event'); },
                            {capture: true});
  const Original = window.EventSource;
  window.EventSource = function (url, options) {
    const source = new Original(url, options);
    first('connect');
    source.addEventListener('open', () => first('open'));
    return source;
  };
  Object.assign(window.EventSource, {CONNECTING: 0, OPEN: 1, CLOSED: 2, prototype: Original.prototype});
  new MutationObserver(() => {
    const times = window.benchTimes, replies = document.querySelectorAll('[data-role="assistant"]');
    if (times.text !== undefined || times.keydown === undefined || replies.length <= times.replies) return;
    const content = replies[replies.length - 1].querySelector('.content');
    if (!content || !content.textContent.trim()) return;
    first('text');
    const request = performance.getEntriesByType('resource').find(
      entry => entry.initiatorType === 'xmlhttprequest' && entry.startTime >= times.keydown);
    if (request) times.response = request.responseEnd;
    console.log('bench:text');
  }).observe(document.documentElement, {childList: true, characterData: true, subtree: true});
}"""

# A plain page that streams the model's reply with fetch() into a <div> when Enter is pressed in its textarea.
# Its body is text/plain so that, like the app's own requests, it needs no CORS preflight.
DIRECT_PAGE = """<!doctype html><title>direct</title>
<textarea id="box">Tell me one fact.</textarea><div id="content"></div>"""

WATCH_DIRECT = """(url) => {
  const times = window.benchTimes = {};
  const first = (name) => { if (times[name] === undefined) times[name] = performance.now(); };
  const content = document.getElementById('content');
  content.textContent = '';
  document.getElementById('box').onkeydown = async (e) => {
    if (e.key !== 'Enter') return;
    first('keydown');
    e.preventDefault();
    const response = await fetch(url + '/chat/completions', {method: 'POST', headers: {'Content-Type': 'text/plain'},
      body: JSON.stringify({model: 'fake-model', stream: true,
                            messages: [{role: 'user', content: 'Tell me one fact.'}]})});
    first('response');
    const reader = response.body.getReader(), decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      first('event');
      buffer += decoder.decode(value, {stream: true});
      const lines = buffer.split('\\n');
      buffer = lines.pop();
      for (const line of lines) {
        if (!line.startsWith('data: {')) continue;
        const piece = JSON.parse(line.slice(6)).choices[0].delta.content;
        if (piece) content.append(piece);
      }
    }
  };
  new MutationObserver(() => {
    if (times.text === undefined && content.textContent.trim()) { first('text'); console.log('bench:text'); }
  }).observe(content, {childList: true, characterData: true, subtree: true});
}"""


@dataclass
class Timed:
    """One send, in ms after its Enter keydown: each step of TIMELINE (None when the side has none)."""

    text: float
    steps: dict


def timed_send(page, press):
    """Press Enter through press(), wait for the page's own note of the first text; return the Timed round."""
    with page.expect_console_message(lambda message: message.text == "bench:text", timeout=30_000):
        press()
    times = page.evaluate("window.benchTimes")
    steps = {name: times[name] - times["keydown"] if name in times else None for name in TIMELINE}
    return Timed(steps["text"], steps)


def app_send(page, text):
    """Send text from the app's composer and time it; wait for the reply to end before returning."""
    from playwright.sync_api import expect

    page.evaluate(WATCH_APP)
    page.locator("#composer-text").fill(text)
    timed = timed_send(page, lambda: page.keyboard.press("Enter"))
    expect(page.locator('[data-role="assistant"]').last).to_have_attribute("data-status", "done", timeout=30_000)
    return timed


def direct_send(page, model_url):
    """Stream one reply from the model into the plain page, timed the same way."""
    page.evaluate(WATCH_DIRECT, model_url)
    page.locator("#box").focus()
    timed = timed_send(page, lambda: page.keyboard.press("Enter"))
    page.wait_for_function(f"document.getElementById('content').textContent === {''.join(PIECES)!r}")
    return timed


def open_new_chat(page):
    """Click New chat and wait until its empty pane has settled."""
    from playwright.sync_api import expect

    with page.expect_response(lambda response: response.url.endswith("/new")):
        page.get_by_role("link", name="New chat", exact=True).click()
    page.wait_for_function("!document.querySelector('.htmx-request, .htmx-settling')")
    expect(page.get_by_text("How can I help?")).to_be_visible()


def app_round(page, number):
    """A new chat's first message, then a follow-up in it; return both Timed."""
    from playwright.sync_api import expect

    open_new_chat(page)
    new_chat = app_send(page, f"Tell me one fact about the number {100 + number}.")
    expect(page.locator("#chat-title")).not_to_have_text("Untitled chat", timeout=30_000)
    followup = app_send(page, f"And one fact about the number {200 + number}?")
    return new_chat, followup


def timeline(sends):
    """The median of each step over sends, as text."""
    parts = []
    for name in ("keydown", *TIMELINE):
        values = [send.steps[name] for send in sends if send.steps.get(name) is not None] if name != "keydown" else [0]
        parts.append(f"{name} {median(values):.0f}" if values else f"{name} —")
    return ", ".join(parts) + " ms"


def measure(browser, app_url, model_url, rounds=ROUNDS):
    """Interleave the app's rounds with the plain page's; return (new chats, follow-ups, directs) as lists of Timed."""
    page = browser.new_page(bypass_csp=True)  # the harness's evaluate needs eval, which the app's CSP forbids
    page.goto(app_url)
    direct = browser.new_page()
    direct.set_content(DIRECT_PAGE)
    new_chats, followups, directs = [], [], []
    for number in range(rounds):
        directs.append(direct_send(direct, model_url))
        new_chat, followup = app_round(page, number)
        new_chats.append(new_chat)
        followups.append(followup)
        directs.append(direct_send(direct, model_url))
    page.close()
    direct.close()
    return new_chats, followups, directs


def rows(new_chats, followups, directs):
    """The table's rows: each app send against the plain page, and where the time goes."""
    direct = median(send.text for send in directs)
    result = []
    for figure, sends in (("a new chat", new_chats), ("a follow-up message", followups)):
        app = median(send.text for send in sends)
        result.append(
            Row(
                f"Time to first token of {figure}, app vs a plain page, in Chromium",
                f"{app:.0f} ms vs {direct:.0f} ms: +{app - direct:.0f} ms",
                "≤ +20 ms",
                app - direct <= 20,
                f"median of {len(sends)} against {len(directs)} interleaved; Enter keydown → first text in the "
                f"reply (page's own listeners); both stream the same fake model, which waits "
                f"{FIRST_DELAY * 1000:.0f} ms before its first piece; app under gunicorn (Procfile), HF backend",
            )
        )
    result.append(
        Row(
            "Where the time goes: a new chat's send, step by step (medians, from the Enter keydown)",
            f"app: {timeline(new_chats)}; plain page: {timeline(directs)}",
            "—",
            None,
            "response: the POST's answer received (Resource Timing; the plain page: fetch's headers); swap: htmx "
            "swapped it in; connect/open: the reply's EventSource created/opened; event: the first render event",
        )
    )
    return result


@benchmark("ttft")
def first_token(servers):
    """Time to first token of a new chat and of a follow-up, in the page, app against a plain page."""
    with FakeModelServer(pieces=PIECES, interval=0.01, first_delay=FIRST_DELAY) as model:
        settings = {"HF_TOKEN": "bench", "HF_BASE_URL": model.url, "CHATBOT_MODELS": "fake-model"}
        with bench_gunicorn(**settings) as server:
            return rows(*measure(servers.browser, server.url, model.url))
