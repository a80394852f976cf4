"""The file pipeline: what an uploaded file is, decided from its bytes alone, made safe to keep and to send.

No Flask here. A file is one of three kinds, told by its content, never by its name or the browser's
Content-Type:

- image: Pillow opens it as PNG, JPEG, WebP or GIF (the first frame). It is re-encoded (JPEG, or PNG when it
  has transparency): every byte of metadata (EXIF with its GPS tags, XMP, ICC, text chunks) is left behind,
  and the longest side is capped. Its pixels, and the memory its decoding would hold, are capped from its
  header before anything is decoded (images.py).
- pdf: starts with %PDF-; pypdf reads it, its pages, content and CPU time capped, and its text is extracted
  (pdfs.py).
- text: anything else that is valid UTF-8 without a NUL byte (plain text, Markdown, CSV, JSON, code).

Two steps, so that everything cheap comes first: receive() checks a message's files from their bytes and
headers (sizes, kinds, pixels, characters of text), nothing decoded; Received.prepare() then decodes them,
one at a time and holding one of the process's few decodes (base.DECODES). The send (files.py) calls
prepare() only once its rate limits, reply slot, token budget and upload allowance let it.

An HTML or SVG file is text by its bytes. It is accepted as text, for the model to read as source, and is
only ever served as text/plain, as a download (files.py): it can never run. The name may only make the
check stricter: a file named like an image (.png, .jpg, ...) must be an image by its bytes, so an HTML or
SVG page renamed .png is refused rather than quietly read as text.
"""

from dataclasses import dataclass

from . import images, pdfs
from .base import DECODES, IMAGE, PDF, TEXT, Caps, Prepared, Refused, decoding, over

__all__ = ["DECODES", "IMAGE", "PDF", "TEXT", "Caps", "Prepared", "Received", "Refused", "model_text", "receive"]

DEFAULT_CAPS = Caps()
# Names of raster images: a file so named must be an image by its bytes. Not .svg: an SVG is text (XML), and is
# taken as text like HTML (only one renamed like a raster image, page.png, is refused).
IMAGE_NAMES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".ico", ".tif", ".tiff", ".avif", ".heic")


@dataclass
class Upload:
    """A file as received: its kind (an image's told from its header, nothing decoded), name, bytes, and a text
    file's text."""

    kind: str
    name: str
    data: bytes
    text: str | None = None


@dataclass
class Received:
    """A message's files, checked from their bytes and headers; prepare() decodes them.

    chars_left is what is left of the context budget (CONTEXT_CHARS) once the message's text and its text
    files' are counted: a PDF's text must fit in it."""

    files: list
    caps: Caps
    chars_left: int

    def __len__(self):
        return len(self.files)

    @property
    def size(self):
        """The bytes received, as uploaded (what the upload allowance is charged)."""
        return sum(len(upload.data) for upload in self.files)

    @property
    def has_images(self):
        """Whether an image is among the files."""
        return any(upload.kind == IMAGE for upload in self.files)

    def prepare(self):
        """Each file made safe (a list of Prepared): an image decoded and re-encoded, a PDF's text extracted,
        one at a time and each holding one of the process's few decodes; Refused when one cannot be."""
        prepared, left = [], self.chars_left
        for upload in self.files:
            if upload.kind == TEXT:
                prepared.append(Prepared(TEXT, upload.name, "text/plain", upload.data, upload.text))
                continue
            with decoding():
                if upload.kind == IMAGE:
                    prepared.append(images.prepare(upload.name, upload.data, self.caps))
                    continue
                overhead = len(model_text(upload.name, "")) + 2
                text = pdfs.text(upload.name, upload.data, self.caps, left - overhead)
            _check_chars(upload.name, text, self.caps)
            left -= overhead + len(text)
            if left < 0:
                raise _too_much_text(self.caps.text_chars - left, self.caps)
            prepared.append(Prepared(PDF, upload.name, "application/pdf", upload.data, text))
        return prepared


def model_text(name, text):
    """A text or PDF file as the model reads it, before the message (filestore.expand_turn)."""
    return f"File {name}:\n```\n{text}\n```"


def safe_name(name):
    """The file's name as shown: its last path part, printable, at most 100 characters."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '"<>').strip()
    return name[:100] or "file"


def receive(uploads, caps=DEFAULT_CAPS, message=""):
    """Check every (name, bytes) of one message, with its text, without decoding anything: the message's caps,
    then each file's size and kind (an image's pixels and decoding memory from its header, a text file's
    characters), then the characters of the message and its text files together. Returns Received."""
    uploads = [(safe_name(name), data) for name, data in uploads if name or data]
    if len(uploads) > caps.message_files:
        raise Refused(f"A message may carry {caps.message_files} files at most; this one has {len(uploads)}.", 413)
    total = sum(len(data) for _, data in uploads)
    if total > caps.message_bytes:
        words = over(total, caps.message_bytes)
        raise Refused(f"These files come to {words[0]}; a message may carry {words[1]}.", 413)
    files = [_received(name, data, caps) for name, data in uploads]
    texts = [model_text(upload.name, upload.text) for upload in files if upload.kind == TEXT]
    used = len("\n\n".join([*texts, message]))
    if used > caps.text_chars:
        raise _too_much_text(used, caps)
    return Received(files, caps, caps.text_chars - used)


def prepare(name, data, caps=DEFAULT_CAPS):
    """One file received and prepared: a Prepared, or Refused saying why."""
    return receive([(name, data)], caps).prepare()[0]


def _received(name, data, caps):
    """An Upload of one file, its kind from its bytes; Refused when it is empty, too big, or of no kind here."""
    if not data:
        raise Refused(f"{name} is empty.")
    if len(data) > caps.file_bytes:
        words = over(len(data), caps.file_bytes)
        raise Refused(f"{name} is {words[0]}; a file may be at most {words[1]}.", 413)
    if images.sniff(name, data, caps) is not None:
        return Upload(IMAGE, name, data)
    if name.lower().endswith(IMAGE_NAMES):
        raise Refused(f"{name} is named like an image, but it is not a PNG, JPEG, WebP or GIF image.")
    if data.startswith(b"%PDF-"):
        return Upload(PDF, name, data)
    return Upload(TEXT, name, data, _text(name, data, caps))


def _text(name, data, caps):
    """Valid UTF-8 without NUL bytes is text; anything else is a type this app does not take."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        raise Refused(f"{name} is not a type this chat takes: images (PNG, JPEG, WebP, GIF), text files or PDFs.")
    _check_chars(name, text, caps)
    return text


def _check_chars(name, text, caps):
    if len(text) > caps.text_chars:
        raise Refused(
            f"{name} holds {len(text):,} characters of text; the model reads {caps.text_chars:,} at most.", 413
        )


def _too_much_text(used, caps):
    return Refused(
        f"This message and its files come to {used:,} characters of text; the model reads {caps.text_chars:,} "
        "at most, the message's own and its files' together. Send fewer files, or shorter ones.",
        413,
    )
