"""What the browser downloads: static files with hashed names, precompressed and cached for good; pages compressed.

Static files (WhiteNoise). At start-up every file under static/ is copied once
into a build folder, under its own name and under a name carrying a hash of
its content (app.css -> app.3f2a1b9c0d.css), each with Brotli and gzip copies
beside it. `url_for('static', filename='app.css')` gives the hashed name, which
WhiteNoise serves with `Cache-Control: immutable` for ten years: a changed file
gets a new name, so a browser never keeps an old one. The plain names are
still served, cached for a minute, for anything that links them by hand.

The app's own JavaScript is minified in the build (rjsmin: comments and
spaces only, no renaming), so app.js can be written with comments that say
why and still cost a first visit a third less; vendored files (static/vendor/)
are served exactly as their packages ship them.

The build folder is named after the digest of every file, in the system's
temporary folder: processes and restarts with the same files share it, and it
is written to a temporary name and renamed, so two processes starting at once
never see half of it. The debug server (`make run`) skips all of this and lets
Flask serve the files as they are edited.

Pages (Flask-Compress). HTML, CSS, JavaScript, JSON and SVG made by views are
compressed with Brotli or gzip, as the browser accepts. Streamed responses
never are (COMPRESS_STREAMS=False): a reply's event stream must reach the
browser piece by piece, and a compressor holds bytes back until it has enough.
"""

import hashlib
import os
import shutil
import tempfile

import rjsmin
from flask_compress import Compress
from whitenoise import WhiteNoise
from whitenoise.compress import Compressor

# Static files whose names carry no hash are cached this long (seconds).
PLAIN_MAX_AGE = 60
# The media types a view's answer is compressed for; text/event-stream is not one of them, on purpose.
COMPRESSED_TYPES = [
    "text/html",
    "text/css",
    "text/javascript",
    "application/javascript",
    "application/json",
    "image/svg+xml",
    "text/markdown",
    "text/plain",
]
HASH_CHARS = 10

_builds = {}  # static folder -> (build folder, {name: hashed name}), once per process


def hashed_name(name, data):
    """name with a short hash of data before its extension: app.css -> app.3f2a1b9c0d.css."""
    stem, dot, extension = name.rpartition(".")
    digest = hashlib.sha256(data).hexdigest()[:HASH_CHARS]
    return f"{stem}.{digest}.{extension}" if dot else f"{name}.{digest}"


def _read_tree(folder):
    """{relative name with "/": bytes} of every file under folder."""
    files = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, folder).replace(os.sep, "/")
            with open(path, "rb") as source:
                files[relative] = source.read()
    return files


def build(static_folder, parent=None):
    """Copy static_folder's files under their plain and hashed names, compressed; return (folder, manifest)."""
    if static_folder in _builds:
        return _builds[static_folder]
    files = {name: _minified(name, data) for name, data in _read_tree(static_folder).items()}
    manifest = {name: hashed_name(name, data) for name, data in files.items()}
    digest = hashlib.sha256("\n".join(sorted(manifest.values())).encode()).hexdigest()[:16]
    parent = parent or tempfile.gettempdir()
    folder = os.path.join(parent, f"chatbot-static-{digest}")
    if not os.path.isdir(folder):
        _write_build(files, manifest, parent, folder)
    _builds[static_folder] = folder, manifest
    return folder, manifest


def _minified(name, data):
    """The app's own JavaScript without its comments and spaces; any other file as it is."""
    if not name.endswith(".js") or name.startswith("vendor/"):
        return data
    return rjsmin.jsmin(data.decode()).encode()


def _write_build(files, manifest, parent, folder):
    work = tempfile.mkdtemp(prefix="chatbot-static-building-", dir=parent)
    compressor = Compressor(quiet=True)
    for name, data in files.items():
        for written in (name, manifest[name]):
            path = os.path.join(work, *written.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as target:
                target.write(data)
            if compressor.should_compress(path):
                compressor.compress(path)
    try:
        os.rename(work, folder)
    except OSError:  # another process finished the same build first: use its folder
        shutil.rmtree(work, ignore_errors=True)


def _nosniff(headers, path, url):
    headers["X-Content-Type-Options"] = "nosniff"


def init_app(app):
    """Serve static files through WhiteNoise under hashed names (not in debug), and compress pages."""
    app.config.setdefault("COMPRESS_MIMETYPES", COMPRESSED_TYPES)
    app.config.setdefault("COMPRESS_ALGORITHM", ["br", "gzip"])
    app.config.setdefault("COMPRESS_STREAMS", False)
    Compress(app)
    if app.debug:
        return
    folder, manifest = build(app.static_folder)
    immutable = {f"{app.static_url_path}/{name}" for name in manifest.values()}

    @app.url_defaults
    def hashed_static_names(endpoint, values):
        if endpoint == "static" and values.get("filename") in manifest:
            values["filename"] = manifest[values["filename"]]

    app.wsgi_app = WhiteNoise(
        app.wsgi_app,
        root=folder,
        prefix=app.static_url_path,
        max_age=PLAIN_MAX_AGE,
        immutable_file_test=lambda path, url: url in immutable,
        add_headers_function=_nosniff,
    )
