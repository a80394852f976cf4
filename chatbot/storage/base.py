"""The Store interface that both backends implement."""

import re

# What read_chunks() holds of an object at a time.
CHUNK_BYTES = 64 * 1024
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


class StorageError(Exception):
    """Base class of the storage errors the app handles."""


class StorageUnavailable(StorageError):
    """The store could not be reached or refused the request; nothing was written."""


class Conflict(StorageError):
    """A conditional write lost to a concurrent one: read again and retry."""


def check_key(key):
    """Raise ValueError unless key is a safe relative key (no '..', no absolute path)."""
    if not KEY_PATTERN.match(key) or ".." in key.split("/"):
        raise ValueError(f"unsafe storage key {key!r}")
    return key


class Store:
    """Bytes under string keys, with versions for compare-and-swap."""

    url = ""

    def read(self, key):
        """Return (data, version) or None when the key does not exist."""
        raise NotImplementedError

    def read_chunks(self, key, chunk_size=CHUNK_BYTES):
        """Return (its size in bytes, an iterator of its bytes in chunks of chunk_size) or None when the key does
        not exist: a file sent to a browser is never whole in memory. This default reads it whole."""
        found = self.read(key)
        if found is None:
            return None
        return len(found[0]), iter([found[0]])

    def write(self, key, data, *, version=None, create=False):
        """Store data; with version only if unchanged since, with create only if absent.

        Raises Conflict when the condition fails. Returns the new version.
        """
        raise NotImplementedError

    def delete(self, key):
        """Remove a key; removing a missing key is not an error."""
        raise NotImplementedError

    def keys(self, prefix=""):
        """Yield every key under prefix."""
        raise NotImplementedError

    def ping(self):
        """Raise StorageUnavailable, with a reason safe to show, unless the store answers now (quick)."""
        self.read("probe/ready.json")
