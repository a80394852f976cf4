"""gunicorn settings, read from the environment as Heroku sets it."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# Each streaming reply holds a thread for its whole length: threaded workers.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
# With gthread, the timeout covers a silent worker, not a long request.
timeout = 120
graceful_timeout = 30
keepalive = 5
accesslog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
