"""What the pipeline's parts share: the caps, the refusal, a file made safe, and the few decodes at once."""

import threading
from contextlib import contextmanager
from dataclasses import dataclass

IMAGE, PDF, TEXT = "image", "pdf", "text"
MB = 1024 * 1024

# Decoding an image or reading a PDF's text is the costly part of a send (memory for an image, pure-Python CPU
# for a PDF). However many uploads arrive at once, a process does this many at a time; the others wait their
# turn (up to DECODE_WAIT_SECONDS) instead of multiplying the memory held. Two: the machine's cores.
DECODES_AT_ONCE = 2
DECODE_WAIT_SECONDS = 30
DECODES = threading.BoundedSemaphore(DECODES_AT_ONCE)


@dataclass(frozen=True)
class Caps:
    """How big files may be: bytes a file and a message, files a message, pages of a PDF, and characters of
    text a message (its own and its files', the model's context budget CONTEXT_CHARS).

    And what reading one may cost. An image: pixels (a vision model gets 1,568 px on the long side at most,
    2.5 megapixels: a bigger image is only shrunk), and the memory its decoding holds at its peak. A JPEG may
    have more pixels than other images, as libjpeg decodes it at 1/2 to 1/8 of its size. A PDF: the bytes of
    its pages' content streams (what the pure-Python text extraction parses), and CPU seconds."""

    file_bytes: int = 10 * MB
    message_bytes: int = 20 * MB
    message_files: int = 4
    max_side: int = 1568
    max_pixels: int = 16_000_000  # 4096 x 4096, a 5K screenshot, a 12-megapixel photo as PNG or WebP
    jpeg_max_pixels: int = 25_000_000  # a 24-megapixel camera's photo
    decode_bytes: int = 128 * MB  # a 16-megapixel RGBA PNG; a WebP (14 bytes a pixel) to about 8 megapixels
    pdf_pages: int = 50
    pdf_content_bytes: int = 3 * MB  # 50 dense pages are about 1 MB; pypdf parses 0.5 to 1 MB a second
    pdf_seconds: float = 8.0  # of CPU, this thread's
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
        return (
            f"{self.message_files} files, {megabytes(self.message_bytes)} in all and {megabytes(self.file_bytes)} each"
        )


class Refused(ValueError):
    """A file cannot be attached; str() says why to the user, status is the HTTP status (400, 413 or 503)."""

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


def megabytes(count):
    """A byte count in words, as the composer's previews (app.js size()) and a sent message's files say it:
    "10 MB", "2.5 MB", "512 KB" (rounded up) under a megabyte, "300 bytes" (or "1 byte") under a kilobyte."""
    if count < 1024:
        return f"{count} byte{'' if count == 1 else 's'}"
    if count < MB:
        return f"{-(-count // 1024)} KB"
    return f"{count / MB:.1f}".removesuffix(".0") + " MB"


def over(count, limit):
    """(count, limit) in words for a refusal: as megabytes() says them, or in bytes when rounding would make a
    count just over the limit read as the limit ("10,485,761 bytes" and "10,485,760 bytes", not "10 MB" twice)."""
    words = megabytes(count), megabytes(limit)
    return words if words[0] != words[1] else (f"{count:,} bytes", f"{limit:,} bytes")


@contextmanager
def decoding():
    """Hold one of the process's few decodes while reading a file; 503 when none frees up in time."""
    if not DECODES.acquire(timeout=DECODE_WAIT_SECONDS):
        raise Refused("The server is busy reading other files. Send your message again in a moment.", 503)
    try:
        yield
    finally:
        DECODES.release()
