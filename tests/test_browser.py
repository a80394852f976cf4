"""The chat in a real browser: Playwright driving Debian's Chromium against the app over HTTP."""

import pytest
from playwright.sync_api import expect

from support import LiveServer, close_page, new_bucket, open_page

pytestmark = [pytest.mark.browser, pytest.mark.model]


# Counts the times the streaming bubble holds more text than before, while its reply is still streaming.
COUNT_TEXT_WHILE_STREAMING = """() => {
  window.textWhileStreaming = 0;
  var longest = 0;
  new MutationObserver(function () {
    var content = document.querySelector('[data-status="streaming"] .content');
    if (content && content.textContent.length > longest) {
      longest = content.textContent.length;
      window.textWhileStreaming += 1;
    }
  }).observe(document.body, {childList: true, subtree: true, characterData: true});
}"""


@pytest.fixture
def live_app(make_app):
    with LiveServer(make_app(MAX_TOKENS=64)) as server:
        yield server


@pytest.fixture
def page(browser, live_app):
    page = open_page(browser, live_app.url)
    yield page
    close_page(page)


def test_send_stream_title_new_chat_and_switch_back(page):
    page.evaluate(COUNT_TEXT_WHILE_STREAMING)
    composer = page.locator('textarea[name="text"]')
    composer.fill("Tell me about the moon.")
    composer.press("Enter")

    expect(page.locator('[data-role="user"] .bubble')).to_have_text("Tell me about the moon.")
    assistant = page.locator('[data-role="assistant"]')
    # The reply streams: text shows up in the bubble while it is still streaming (counted in the page, since
    # the small model may finish within a second) ...
    expect(assistant).to_have_attribute("data-status", "done", timeout=60_000)
    assert page.evaluate("window.textWhileStreaming") >= 2
    # ... and is then replaced by its rendered form.
    expect(assistant.locator(".content.markdown")).not_to_be_empty()
    expect(composer).to_have_value("")

    entry = page.locator("#sidebar [data-conversation-id]")
    expect(entry).to_have_count(1)
    expect(entry.locator(".entry-link")).not_to_have_text("Untitled chat", timeout=30_000)
    title = entry.locator(".entry-link").inner_text().strip()
    assert 0 < len(title.split()) <= 6
    conversation_url = page.url
    assert "/c/" in conversation_url

    page.get_by_role("link", name="New chat").click()
    expect(page.locator('[data-role="user"]')).to_have_count(0)
    expect(page.get_by_text("How can I help?")).to_be_visible()

    page.locator("#sidebar [data-conversation-id] .entry-link").click()
    expect(page.locator('[data-role="user"] .bubble')).to_have_text("Tell me about the moon.")
    assert page.url == conversation_url

    page.reload()
    expect(page.locator('[data-role="user"] .bubble')).to_have_text("Tell me about the moon.")
    expect(page.locator('[data-role="assistant"]')).to_have_attribute("data-status", "done")
    expect(page.locator("#sidebar [data-conversation-id] .entry-link")).to_have_text(title)


def test_shift_enter_makes_a_new_line(page):
    composer = page.locator('textarea[name="text"]')
    composer.fill("line one")
    composer.press("Shift+Enter")
    composer.type("line two")
    expect(composer).to_have_value("line one\nline two")
    expect(page.locator('[data-role="user"]')).to_have_count(0)


def test_blank_message_shows_an_inline_error(page):
    composer = page.locator('textarea[name="text"]')
    composer.fill("   ")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#composer-error")).to_have_text("Type a message first.")
    expect(page.locator('[data-role="user"]')).to_have_count(0)


def test_chat_works_without_javascript(browser, live_app):
    page = open_page(browser, live_app.url, java_script_enabled=False)
    page.locator('textarea[name="text"]').fill("Hello without scripts")
    page.get_by_role("button", name="Send").click()
    expect(page.locator('[data-role="user"] .bubble')).to_have_text("Hello without scripts", timeout=60_000)
    expect(page.locator('[data-role="assistant"]')).to_have_attribute("data-status", "done")
    expect(page.locator("#sidebar [data-conversation-id]")).to_have_count(1)
    close_page(page)


@pytest.mark.s3
def test_chat_on_s3_with_the_hugging_face_backend(browser, make_app, llama_server, s3_server, monkeypatch):
    """The production path: InferenceClient against a model server, conversations in a bucket."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    bucket = new_bucket(s3_server)
    app = make_app(
        LLM_BACKEND="huggingface",
        HF_TOKEN="hf_test",
        HF_BASE_URL=llama_server + "/v1",
        CHATBOT_MODELS=["google/gemma-2-9b-it", "other/model"],
        STORAGE_URL=f"s3://{bucket}/chatbot",
    )
    with LiveServer(app) as server:
        page = open_page(browser, server.url)
        page.get_by_label("Model").select_option("other/model")
        page.locator('textarea[name="text"]').fill("Hello from the browser")
        page.locator('textarea[name="text"]').press("Enter")
        assistant = page.locator('[data-role="assistant"]')
        expect(assistant).to_have_attribute("data-status", "done", timeout=60_000)
        expect(assistant.locator(".model")).to_have_text("other/model")
        expect(page.locator("#sidebar [data-conversation-id] .entry-link")).not_to_have_text(
            "Untitled chat", timeout=30_000
        )
        close_page(page)
    keys = [item["Key"] for item in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert any("/conversations/" in key for key in keys) and any(key.endswith("index.json") for key in keys)
