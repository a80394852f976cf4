"""Storage: a key-value Store with compare-and-swap writes, chosen by STORAGE_URL."""

import json
import os
import random
import time
from urllib.parse import urlparse

from flask import current_app

from .base import Conflict, StorageError, StorageUnavailable, Store

__all__ = [
    "Conflict",
    "Store",
    "StorageError",
    "StorageUnavailable",
    "encode_json",
    "get_store",
    "init_app",
    "open_store",
    "read_json",
    "update_json",
]

MAX_ATTEMPTS = 20
BACKOFF_SECONDS, MAX_BACKOFF_SECONDS = 0.005, 0.25


def open_store(url):
    """Return the Store a URL names: file:///path/to/dir or s3://bucket/prefix."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        from .local import LocalStore

        return LocalStore(parsed.path)
    if parsed.scheme == "s3":
        from .s3 import S3Store

        if not parsed.netloc:
            raise ValueError(f"{url!r} names no bucket: use s3://bucket/prefix")
        return S3Store(parsed.netloc, parsed.path.strip("/"), endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
    raise ValueError(f"STORAGE_URL {url!r} is not file:///path or s3://bucket/prefix")


def init_app(app):
    """Bind the configured store to the app (created now, connected lazily)."""
    url = app.config["STORAGE_URL"] or "file://" + os.path.join(app.instance_path, "data")
    app.config["STORAGE_URL"] = url
    app.extensions["store"] = open_store(url)


def get_store():
    """Return the current app's Store."""
    return current_app.extensions["store"]


def read_json(store, key):
    """Return (document, version) for a key, or (None, None) when it does not exist."""
    found = store.read(key)
    if found is None:
        return None, None
    data, version = found
    return json.loads(data), version


def encode_json(document):
    """Compact JSON bytes."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def update_json(store, key, change, encode=encode_json):
    """Apply change(document or None) -> new document or None (no write) with compare-and-swap.

    On a concurrent write the document is read again and change applied again,
    so change must be a pure function of what it is given.
    """
    for attempt in range(MAX_ATTEMPTS):
        if attempt:
            # Writers that lost a race wait a random while before the next try, so that many at once
            # (replies of one user ending together, all updating its index) spread out instead of colliding again.
            time.sleep(random.uniform(0, min(BACKOFF_SECONDS * 2**attempt, MAX_BACKOFF_SECONDS)))
        document, version = read_json(store, key)
        updated = change(document)
        if updated is None:
            return document
        data = encode(updated)
        try:
            store.write(key, data, version=version, create=version is None)
        except Conflict:
            continue
        return updated
    raise StorageUnavailable(f"too many concurrent writes to {key}")
