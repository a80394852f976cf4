"""gunicorn settings, read from the environment as Heroku sets it."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# Each streaming reply holds a thread for its whole length: threaded workers.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
# With gthread, the timeout covers a silent worker, not a long request.
timeout = 120
graceful_timeout = 30
keepalive = 5
accesslog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def when_ready(server):
    """Turn off Nagle's algorithm: an SSE reply is many small writes, each to be sent at once."""
    import socket

    for listener in server.LISTENERS:
        # Linux passes TCP_NODELAY on from the listening socket to each accepted connection.
        listener.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
