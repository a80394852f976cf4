"""What tests, benchmarks and docs/screenshots.py share. Import from here, never from conftest or a test_ module.

- app: the app as tests build it (build_app, TEST_SETTINGS), its store's contents, the fakes FakeLLM,
  FakeSlowLLM, BlockingLLM and SlowTitleLLM
- events: htmx requests, reading a reply's event stream, and what a page builds from its render events
- seeding: many conversations written straight to a store
- servers: free ports, LiveServer (the app in a thread), LlamaServer, RedisServer, Gunicorn
- fake_model: a FAKE OpenAI-compatible model server that streams a known reply at a known pace
- fake_hub: a FAKE Hugging Face Hub (model info with providers and pipeline_tag, whoami) over HTTP
- http_chat: chatting with a running server over HTTP as htmx does, reading the event stream as it comes
- s3: moto's S3 server and bucket names; faultproxy: cut the network to a server and restore it
- browser: Chromium's path, a page that collects console errors, axe-core's violations, sending a message,
  a seeded guest's server and pages
"""

from .app import (
    CLEARED_ENVIRONMENT,
    SLOW_FRUIT_REPLY,
    SLOW_FRUIT_TITLE,
    TEST_SETTINGS,
    BlockingLLM,
    FakeLLM,
    FakeSlowLLM,
    SlowTitleLLM,
    as_guest,
    build_app,
    guest_uid,
    in_pieces,
    stored_conversations,
)
from .browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    axe_violations,
    close_page,
    open_as_guest,
    open_page,
    seeded_guest,
    send_message,
)
from .events import (
    HTMX,
    LivePage,
    assemble,
    finish_reply,
    finished_conversation,
    open_stream_at_first_token,
    parse_events,
    start_conversation,
    stream_url,
)
from .fake_model import FakeModelServer
from .faultproxy import FaultProxy
from .http_chat import HttpChat, SSEEvent, read_events
from .s3 import CREDENTIALS, S3Server, bucket_name, new_bucket
from .seeding import seed_conversations
from .servers import (
    BIN,
    ROOT,
    Gunicorn,
    LiveServer,
    LlamaServer,
    RedisServer,
    child_pids,
    fill_redis,
    free_port,
    wait_until_up,
)

__all__ = [
    "BIN",
    "BlockingLLM",
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "CLEARED_ENVIRONMENT",
    "CREDENTIALS",
    "HTMX",
    "ROOT",
    "TEST_SETTINGS",
    "FakeLLM",
    "FakeModelServer",
    "FakeSlowLLM",
    "FaultProxy",
    "Gunicorn",
    "HttpChat",
    "SSEEvent",
    "read_events",
    "LiveServer",
    "LivePage",
    "LlamaServer",
    "RedisServer",
    "SLOW_FRUIT_REPLY",
    "SLOW_FRUIT_TITLE",
    "S3Server",
    "SlowTitleLLM",
    "as_guest",
    "assemble",
    "axe_violations",
    "bucket_name",
    "build_app",
    "child_pids",
    "fill_redis",
    "close_page",
    "finish_reply",
    "finished_conversation",
    "free_port",
    "guest_uid",
    "in_pieces",
    "new_bucket",
    "open_as_guest",
    "open_page",
    "open_stream_at_first_token",
    "parse_events",
    "seed_conversations",
    "seeded_guest",
    "send_message",
    "start_conversation",
    "stored_conversations",
    "stream_url",
    "wait_until_up",
]
