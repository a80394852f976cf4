"""The one place that opens Redis connections: live replies, reply slots and the rate limits' storage use it.

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
