"""Blueprint "files": GET /files/<fid> serves an attached file to its owner (anyone else: 404); a share link's
copies are served the same way by share.py.

An image inline, anything else as a download; always with nosniff, a CSP that runs nothing (sandbox) and
Cache-Control: private. Never text/html nor image/svg+xml: the only types are the ones the pipeline gave
(image/jpeg, image/png, application/pdf, text/plain; attachments.py), anything else octet-stream.
"""

from urllib.parse import quote

from flask import Blueprint, Response, abort, current_app, request

from . import attachments, filestore, keys, limits
from .attachments import IMAGE
from .conversations import is_valid_id
from .identity import current_uid, user_required
from .llm import get_llm
from .storage import get_store, read_json

SERVED_TYPES = {"image/jpeg", "image/png", "application/pdf", "text/plain"}

bp = Blueprint("files", __name__)


@bp.get("/files/<fid>")
@user_required
def serve(fid):
    """A file, to its owner only: inline for an image, a download otherwise; never anything that runs."""
    if not is_valid_id(fid):
        abort(404)
    store, uid = get_store(), current_uid()
    about, _ = read_json(store, keys.file_about(uid, fid))
    found = store.read(keys.file(uid, fid))
    if about is None or found is None:
        abort(404)
    return file_response(found[0], about, "private, max-age=3600")  # never a shared cache: it is one user's


def file_response(data, about, cache_control):
    """A file's answer: inline for an image, a download otherwise, never anything that runs.

    about is what the file is ({name, type, kind}); cache_control says who may keep it, and how long."""
    mime = about.get("type") if about.get("type") in SERVED_TYPES else "application/octet-stream"
    disposition = "inline" if about.get("kind") == IMAGE else "attachment"
    response = Response(data, mimetype=mime)  # Flask adds charset=utf-8 to text/plain
    response.headers["Content-Disposition"] = _disposition(disposition, about.get("name") or "file")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"  # nothing in it may run
    response.headers["Cache-Control"] = cache_control
    return response


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
    sees_images = get_llm().seeing_models(config["VISION_MODELS"])  # never waits for the Hub (llm/base.py)
    if received.has_images and model not in sees_images:
        seeing = [name for name in get_llm().models if name in sees_images]
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
