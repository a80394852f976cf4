"""Blueprint "files": GET /files/<fid> serves an attached file to its owner (anyone else: 404); a share link's
copies are served the same way by share.py.

An image inline, anything else as a download; always with nosniff, a CSP that runs nothing (sandbox) and
Cache-Control: private, no-cache (an ETag, a 304). Never text/html nor image/svg+xml: the only types are the
ones the pipeline gave (image/jpeg, image/png, application/pdf, text/plain; attachments.py), anything else
octet-stream.
"""

from urllib.parse import quote

from flask import Blueprint, Response, abort, current_app, request

from . import attachments, filestore, keys, limits
from .attachments import IMAGE
from .conversations import is_valid_id
from .identity import current_uid, user_required
from .llm import get_llm, seeing_models, unavailable_models
from .storage import get_store, read_json

SERVED_TYPES = {"image/jpeg", "image/png", "application/pdf", "text/plain"}
# A file may be kept by the browser that shows it, never by a shared cache, and only as long as it exists: the
# browser asks again every time, and an unchanged file costs a 304 (its ETag is its id: a file's bytes never
# change), while a deleted file, a revoked link's, or one asked for by someone else is a 404 at once.
FILE_CACHE = "private, no-cache"

# Nothing in a file may run or load anything (sandbox: no script, an origin of its own). An image shown on its
# own is a document the browser writes itself (Chromium's image viewer), whose inline styles default-src 'none'
# blocks (3 console errors each time one opens): style-src 'unsafe-inline' lets them apply. No markup of anyone
# else can be in that document: the body is a JPEG or PNG this app re-encoded, served as one with nosniff, never
# parsed as HTML; and a style can run nothing.
FILE_POLICY = "default-src 'none'; sandbox"
IMAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"

# The names' own extensions each served type may keep; any other is followed by the first of them.
EXTENSIONS = {"image/jpeg": ("jpg", "jpeg"), "image/png": ("png",), "application/pdf": ("pdf",)}
# Extensions that make a saved file render or run where it is opened (a browser, a script host, a shell): a
# text file named so is saved as name.txt, so that it opens as the text it is.
RUNNABLE = set(
    "html htm xhtml xht shtml mht mhtml svg svgz xml xsl xslt js mjs cjs jse hta vbs vbe wsf wsh ps1 bat cmd com "
    "exe scr pif msi reg lnk url scf desktop command jar jnlp webloc inetloc swf".split()
)

bp = Blueprint("files", __name__)


@bp.get("/files/<fid>")
@user_required
@limits.limit_downloads
def serve(fid):
    """A file, to its owner only: inline for an image, a download otherwise; never anything that runs."""
    if not is_valid_id(fid):
        abort(404)
    store, uid = get_store(), current_uid()
    about, _ = read_json(store, keys.file_about(uid, fid))  # checked on every request: a 304 only to the owner
    if about is None:
        abort(404)
    return file_response(store, keys.file(uid, fid), about, fid)


def file_response(store, key, about, fid):
    """A file's answer (its bytes at key in store): inline for an image, a download otherwise, never anything
    that runs; a 304 when the browser has it (If-None-Match).

    about is what the file is ({name, type, kind}). The browser may keep it, never a shared cache, and asks
    each time (no-cache: a deleted file is a 404 at once); its ETag is its id, since a file's bytes never
    change. The body is read from the store in chunks as it is sent, and the send holds one of the process's
    threads: it is counted with the open streams (limits.hold_download) until the response closes.
    """
    if fid in request.if_none_match:
        response = Response(status=304)
    else:
        release = limits.hold_download()  # a 429 or 503 at once, before the store is asked
        try:
            found = store.read_chunks(key)
        except BaseException:
            release()
            raise
        if found is None:
            release()
            abort(404)
        response = _file_body(found[0], _counted(found[1], release), about)
        response.call_on_close(release)  # a body never begun (the client went away first)
    response.headers["Cache-Control"] = FILE_CACHE
    response.set_etag(fid)
    return response


def _counted(chunks, release):
    """The body's chunks; the download's count ends with the last one (or when the server stops reading)."""
    try:
        yield from chunks
    finally:
        release()


def _file_body(size, chunks, about):
    mime = about.get("type") if about.get("type") in SERVED_TYPES else "application/octet-stream"
    disposition = "inline" if about.get("kind") == IMAGE else "attachment"
    response = Response(chunks, mimetype=mime)  # Flask adds charset=utf-8 to text/plain
    response.headers["Content-Length"] = str(size)
    response.headers["Content-Disposition"] = _disposition(disposition, download_name(about))
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = IMAGE_POLICY if mime.startswith("image/") else FILE_POLICY
    return response


@bp.app_template_filter("download_name")
def download_name(about):
    """The name a file is saved under ({name, type}): its own, with an extension of its type added when it has
    another (a PDF named page.html), or .txt after one that would render or run (x;filename=evil.html)."""
    name, mime = about.get("name") or "file", about.get("type")
    trimmed = name.rstrip(". ")  # Windows drops trailing dots and spaces when it saves a file
    extension = trimmed.rsplit(".", 1)[1].lower() if "." in trimmed else ""
    if mime in EXTENSIONS and extension not in EXTENSIONS[mime]:
        return f"{name}.{EXTENSIONS[mime][0]}"
    if mime not in EXTENSIONS and extension in RUNNABLE:
        return f"{name}.txt"
    return name


def _disposition(kind, name):
    """Content-Disposition with the name as ASCII, and whole in UTF-8 (RFC 6266)."""
    plain = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;' else "_" for ch in name)
    return f"{kind}; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


def read_uploads(model, text):
    """The files posted with a message (the "files" field), with its text, checked without decoding anything:
    an attachments.Received, whose files keep() decodes and stores once the send may go on.

    Raises attachments.Refused (the chat says why in the composer, the text kept) for a file or a message
    over a cap, a type this app does not take, or an image for a model that cannot see images.
    """
    config = current_app.config
    uploads = [(upload.filename, upload.read()) for upload in request.files.getlist("files") if upload.filename]
    received = attachments.receive(uploads, attachments.Caps.from_config(config), text)
    sees_images = seeing_models()  # never waits for the Hub (llm/base.py)
    if received.has_images and model not in sees_images:
        unavailable = unavailable_models()  # not suggested: the picker disables them
        seeing = [name for name in get_llm().models if name in sees_images and name not in unavailable]
        pick = f"Pick one that can ({', '.join(seeing)})" if seeing else "No model here can"
        raise attachments.Refused(f"{model} cannot see images. {pick}, or send the message without the image.")
    return received


def keep(uid, received):
    """Charge the bytes received to uid's daily upload allowance (429 when over), then decode the files and
    store them; return their references.

    Called once the send's rate limits, reply slot and token budget let it go on: a refused send decodes
    nothing. The allowance counts the bytes as uploaded, before decoding (the work it bounds), not as stored.
    """
    if not received:
        return None
    limits.require_upload_room(uid, received.size)
    return filestore.save(get_store(), uid, received.prepare())


def stored_with(uid, received, write):
    """Keep the files (keep()), then return write(references), which stores the message referencing them.

    When the write is refused or fails (the conversation is full or gone, a write lost every retry, storage
    is down), the files are deleted again: a send that was not stored leaves no file behind.
    """
    references = keep(uid, received)
    try:
        return write(references)
    except BaseException:
        if references:
            filestore.delete(get_store(), uid, references)
        raise
