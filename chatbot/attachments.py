"""The file pipeline: what an uploaded file is, decided from its bytes alone, made safe to keep and to send.

No Flask here. A file is one of three kinds, told by its content, never by its name or the browser's
Content-Type:

- image: Pillow decodes it as PNG, JPEG, WebP or GIF (the first frame). It is re-encoded (JPEG, or PNG
  when it has transparency): every byte of metadata (EXIF with its GPS tags, XMP, ICC, text chunks) is
  left behind, and the longest side is capped. Pillow's decompression-bomb guard refuses images with too
  many pixels, and its warning (half that many) is an error here too.
- pdf: starts with %PDF-; pypdf reads it, the page count is capped, and its text is extracted.
- text: anything else that is valid UTF-8 without a NUL byte (plain text, Markdown, CSV, JSON, code).

An HTML or SVG file is text by its bytes. It is accepted as text, for the model to read as source, and is
only ever served as text/plain, as a download (files.py): it can never run. The name may only make the
check stricter: a file named like an image (.png, .jpg, ...) must be an image by its bytes, so an HTML or
SVG page renamed .png is refused rather than quietly read as text.
"""

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

IMAGE, PDF, TEXT = "image", "pdf", "text"
IMAGE_FORMATS = {"PNG", "JPEG", "WEBP", "GIF"}
IMAGE_NAMES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".svg", ".ico", ".tif", ".tiff", ".avif", ".heic")
JPEG_QUALITY = 85


@dataclass(frozen=True)
class Caps:
    """How big files may be: bytes a file and a message, files a message, pixels and side of an image,
    pages of a PDF, and characters of a file's text (the model's context budget, CONTEXT_CHARS)."""

    file_bytes: int = 10 * 1024 * 1024
    message_bytes: int = 20 * 1024 * 1024
    message_files: int = 4
    max_pixels: int = 40_000_000
    max_side: int = 1568
    pdf_pages: int = 50
    text_chars: int = 12000

    @classmethod
    def from_config(cls, config):
        """Read the caps from a Flask config mapping."""
        return cls(
            file_bytes=config["ATTACHMENT_FILE_BYTES"],
            message_bytes=config["ATTACHMENT_MESSAGE_BYTES"],
            message_files=config["ATTACHMENT_MESSAGE_FILES"],
            pdf_pages=config["ATTACHMENT_PDF_PAGES"],
            text_chars=config["CONTEXT_CHARS"],
        )

    def described(self):
        """What a message may carry, in words: "4 files, 20 MB in all and 10 MB each"."""
        in_all, each = _megabytes(self.message_bytes), _megabytes(self.file_bytes)
        return f"{self.message_files} files, {in_all} in all and {each} each"


class Refused(ValueError):
    """A file cannot be attached; str() says why to the user, status is the HTTP status (400 or 413)."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


@dataclass
class Prepared:
    """A file made safe: its kind, the name it came with, the type it is served as, its bytes, its text."""

    kind: str
    name: str
    mime: str
    data: bytes
    text: str | None = None  # what the model reads (text and PDF files)

    @property
    def size(self):
        """Its size in bytes, as stored."""
        return len(self.data)


def _megabytes(count):
    return f"{count / (1024 * 1024):.0f} MB" if count >= 1024 * 1024 else f"{count / 1024:.0f} KB"


def safe_name(name):
    """The file's name as shown: its last path part, printable, at most 100 characters."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '"<>').strip()
    return name[:100] or "file"


def prepare(name, data, caps=Caps()):
    """Return a Prepared file from an upload's name and bytes, or raise Refused saying why."""
    name = safe_name(name)
    if not data:
        raise Refused(f"{name} is empty.")
    if len(data) > caps.file_bytes:
        raise Refused(f"{name} is {_megabytes(len(data))}; a file may be at most {_megabytes(caps.file_bytes)}.", 413)
    image = _image(name, data, caps)
    if image is not None:
        return image
    if name.lower().endswith(IMAGE_NAMES):
        raise Refused(f"{name} is named like an image, but it is not a PNG, JPEG, WebP or GIF image.")
    if data.startswith(b"%PDF-"):
        return _pdf(name, data, caps)
    return _text(name, data, caps)


def prepare_all(uploads, caps=Caps()):
    """Prepare every (name, bytes) of one message, checking the message's caps first."""
    uploads = [(name, data) for name, data in uploads if name or data]
    if len(uploads) > caps.message_files:
        raise Refused(f"A message may carry {caps.message_files} files at most; this one has {len(uploads)}.", 413)
    total = sum(len(data) for _, data in uploads)
    if total > caps.message_bytes:
        raise Refused(
            f"These files come to {_megabytes(total)}; a message may carry {_megabytes(caps.message_bytes)}.", 413
        )
    return [prepare(name, data, caps) for name, data in uploads]


def _image(name, data, caps):
    """The re-encoded image, None when the bytes are no image Pillow knows, or Refused (a bomb, a corrupt file)."""
    Image.MAX_IMAGE_PIXELS = caps.max_pixels  # Pillow raises DecompressionBombError above twice this
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=sorted(IMAGE_FORMATS)) as image:
                image.seek(0)  # a GIF's first frame
                _decode_smaller(image, caps.max_side)
                image.load()
                return _reencode(name, image, caps)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise Refused(f"{name} is too large an image to open safely.", 413) from None
    except UnidentifiedImageError:
        return None
    except (OSError, SyntaxError, ValueError, EOFError):  # Pillow's ways of saying a file is truncated or corrupt
        raise Refused(f"{name} looks like an image but is damaged, so it cannot be read.") from None


def _decode_smaller(image, max_side):
    """Have a large JPEG decoded at 1/2, 1/4 or 1/8 of its size (libjpeg scales as it decodes), never below the
    size it is cut down to: a 12-megapixel photo is then re-encoded in 90 ms instead of 210 (bench attach)."""
    scale = max_side / max(image.size)
    if image.format == "JPEG" and scale < 1:
        image.draft(None, (int(image.width * scale), int(image.height * scale)))


def _reencode(name, image, caps):
    """Only the pixels: a new image, no metadata, its longest side at most caps.max_side."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    image = image.convert("RGBA" if has_alpha else "RGB")
    image.thumbnail((caps.max_side, caps.max_side))  # keeps the ratio; never enlarges
    clean = Image.new(image.mode, image.size)  # a fresh image carries no info, EXIF or ICC profile
    clean.paste(image)
    out = io.BytesIO()
    if has_alpha:
        clean.save(out, "PNG", optimize=True)
        return Prepared(IMAGE, name, "image/png", out.getvalue())
    clean.save(out, "JPEG", quality=JPEG_QUALITY)
    return Prepared(IMAGE, name, "image/jpeg", out.getvalue())


def _pdf(name, data, caps):
    """A PDF within the page cap, with its text extracted (it must fit the context budget)."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = len(reader.pages)
        if pages > caps.pdf_pages:
            raise Refused(f"{name} has {pages} pages; a PDF may have {caps.pdf_pages} at most.", 413)
        text = "\n\n".join((page.extract_text() or "").strip() for page in reader.pages).strip()
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as error:
        if isinstance(error, Refused):
            raise
        raise Refused(f"{name} is not a PDF that can be read.") from None
    if not text:
        raise Refused(f"{name} has no text to read (a scanned PDF?).")
    _check_chars(name, text, caps)
    return Prepared(PDF, name, "application/pdf", data, text)


def _text(name, data, caps):
    """Valid UTF-8 without NUL bytes is text; anything else is a type this app does not take."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        raise Refused(f"{name} is not a type this chat takes: images (PNG, JPEG, WebP, GIF), text files or PDFs.")
    _check_chars(name, text, caps)
    return Prepared(TEXT, name, "text/plain", data, text)


def _check_chars(name, text, caps):
    if len(text) > caps.text_chars:
        raise Refused(
            f"{name} holds {len(text):,} characters of text; the model reads {caps.text_chars:,} at most.", 413
        )
