"""gunicorn settings, read from the environment as Heroku sets it."""

import os
import signal
import sys

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# Threaded workers: an open event stream holds a thread while it waits for the reply's next event
# (an idle thread costs little memory and no CPU), and the model client (huggingface_hub, for both
# backends) is blocking code that an event loop could not interrupt. 256 threads hold 200+ streams a process.
worker_class = "gthread"
# The app reads the same setting (chatbot/config.py, same default): it keeps a fifth of them free of streams
# (MAX_OPEN_STREAMS_PER_PROCESS), so page views, health checks and log-ins always find a thread.
threads = int(os.environ.get("GUNICORN_THREADS", "256"))
# Live replies are shared between processes through Redis. Without REDIS_URL a reply lives in the
# process that generates it, so one process serves everything (WEB_CONCURRENCY is ignored, and said so).
if os.environ.get("REDIS_URL"):
    workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
else:
    workers = 1
    if int(os.environ.get("WEB_CONCURRENCY") or 1) > 1:
        print(
            "gunicorn.conf.py: WEB_CONCURRENCY is ignored without REDIS_URL: one process serves the app, "
            "since live replies are shared between processes only through Redis.",
            file=sys.stderr,
        )
# With gthread, the timeout covers a silent worker, not a long request.
timeout = 120
# On SIGTERM (a deploy, the daily restart) streams end at once (browsers reconnect elsewhere) and
# replies being generated get this long to finish; what they have is then saved as interrupted.
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "25"))
# What a stopping worker keeps for itself to save the replies it could not finish.
SAVE_MARGIN = 3
keepalive = 5
# The app logs each request as one JSON line (chatbot/logs.py): no access log to repeat it, and
# gunicorn's own lines in the same format.
accesslog = None
logger_class = "chatbot.logs.GunicornLogger"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def when_ready(server):
    """Refuse several processes without Redis; turn off Nagle's algorithm for the event streams."""
    import socket

    if server.num_workers > 1 and not os.environ.get("REDIS_URL"):
        server.log.error(
            "Several worker processes need REDIS_URL: a reply's live stream must reach the process "
            "that generates it. Set REDIS_URL, or run one process (-w 1)."
        )
        sys.exit(1)
    # An SSE reply is many small writes, each to be sent at once.
    for listener in server.LISTENERS:
        # Linux passes TCP_NODELAY on from the listening socket to each accepted connection.
        listener.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _replies(worker):
    extensions = getattr(getattr(worker, "wsgi", None), "extensions", {})  # no app when it failed to load
    return extensions.get("replies")


def post_worker_init(worker):
    """On SIGTERM, tell the app first: its streams end and its replies get the grace period to finish."""
    stop_worker = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        replies = _replies(worker)
        if replies is not None:
            replies.begin_shutdown(max(1, worker.cfg.graceful_timeout - SAVE_MARGIN))
        stop_worker(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def worker_exit(server, worker):
    """Wait for this worker's replies to finish or save what they have, before the process ends."""
    replies = _replies(worker)
    if replies is not None:
        if not replies.shutting_down:
            replies.begin_shutdown(1)
        left = replies.wait_for_jobs(worker.cfg.graceful_timeout)
        if left:
            server.log.warning("%d replies were still running at exit", left)
