"""The one place that opens Redis connections: live replies, reply slots and the rate limits' storage use it.

A process shares one small pool (connection_pool) among all of them, and the live reader thread has one
connection of its own: a Key-Value Store plan caps the connections of every process together.

Heroku's Key-Value Store serves rediss:// with a self-signed certificate, which its documentation says not
to verify: unless the URL says otherwise (?ssl_cert_reqs=required), a rediss:// connection is encrypted but
its certificate is not checked.
"""

import redis


def _certificate_options(url):
    """redis-py options for url's certificate: unchecked for a rediss:// URL that does not say."""
    if url.startswith("rediss://") and "ssl_cert_reqs=" not in url:
        return {"ssl_cert_reqs": None}
    return {}


def connect(url, **options):
    """A redis-py client for url (its connection pool is thread-safe: one per process and use)."""
    return redis.Redis.from_url(url, **{**_certificate_options(url), **options})


# Connections a process's pool may open (the live reader thread has one more of its own).
POOL_SIZE = 4
# How long a caller waits for a free connection of the pool before the call fails (Redis unavailable).
POOL_WAIT_SECONDS = 10


def connection_pool(url, max_connections=POOL_SIZE, **options):
    """The process's shared pool for url: at most max_connections, a caller waiting for a free one rather
    than opening more."""
    options = {"socket_connect_timeout": 3, "socket_timeout": 5, "health_check_interval": 30, **options}
    return redis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=POOL_WAIT_SECONDS, **{**_certificate_options(url), **options}
    )
