"""The folder Store: the default, one file per key under a directory."""

import fcntl
import hashlib
import os
import tempfile
from contextlib import contextmanager

from .base import CHUNK_BYTES, Conflict, StorageUnavailable, Store, check_key


class LocalStore(Store):
    """Files under root; writes are atomic renames under an inter-process lock."""

    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.url = "file://" + self.root

    def _path(self, key):
        return os.path.join(self.root, *check_key(key).split("/"))

    @contextmanager
    def _locked(self):
        # One lock file for the folder: flock excludes other processes and
        # other threads alike (each opens its own file description).
        os.makedirs(self.root, exist_ok=True)
        with open(os.path.join(self.root, ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def read(self, key):
        """Return (data, version) or None."""
        try:
            with open(self._path(key), "rb") as file:
                data = file.read()
        except FileNotFoundError:
            return None
        return data, hashlib.md5(data).hexdigest()

    def read_chunks(self, key, chunk_size=CHUNK_BYTES):
        """Return (size, the file's bytes in chunks, read as they are asked for) or None."""
        try:
            file = open(self._path(key), "rb")
        except FileNotFoundError:
            return None
        return os.fstat(file.fileno()).st_size, _chunks(file, chunk_size)

    def write(self, key, data, *, version=None, create=False):
        """Write atomically, checking the version under the lock."""
        path = self._path(key)
        with self._locked():
            current = self.read(key)
            if create and current is not None:
                raise Conflict(key)
            if version is not None and (current is None or current[1] != version):
                raise Conflict(key)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                os.replace(temporary, path)
            except BaseException:
                os.unlink(temporary)
                raise
        return hashlib.md5(data).hexdigest()

    def delete(self, key):
        """Remove the file if it exists."""
        with self._locked():
            try:
                os.remove(self._path(key))
            except FileNotFoundError:
                pass

    def keys(self, prefix=""):
        """Yield keys under prefix, skipping the lock and temporary files."""
        for directory, _, files in os.walk(self.root):
            for name in files:
                if name.startswith("."):
                    continue
                key = os.path.relpath(os.path.join(directory, name), self.root).replace(os.sep, "/")
                if key.startswith(prefix):
                    yield key

    def ping(self):
        """Raise StorageUnavailable unless the folder exists (or can be made) and is writable."""
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as error:
            raise StorageUnavailable(f"the storage folder cannot be created: {error.strerror}") from error
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageUnavailable("the storage folder is not writable")


def _chunks(file, chunk_size):
    """The file's bytes, chunk_size at a time; the file is closed at the end, or when the reader stops early."""
    with file:
        while chunk := file.read(chunk_size):
            yield chunk
