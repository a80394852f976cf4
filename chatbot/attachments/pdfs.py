"""PDFs: their text, read by pypdf within bounds on memory and CPU.

pypdf's text extraction is pure Python: it parses every operator of a page's content streams, about a
megabyte a second. A few kilobytes of PDF can hold megabytes of content (Flate compresses repetition a
thousandfold), and pages may share one stream, each parsing it again. So, before any text is extracted:

- what pypdf may inflate is capped (a stream, and its decoding work), and so is what it parses of one stream;
- the content streams' bytes are summed over the pages, a stream counted on every page that draws it, and a
  PDF over caps.pdf_content_bytes is refused;

and while extracting, the CPU time this thread spent is checked before every operator pypdf interprets
(forms drawn inside a page included): past caps.pdf_seconds, the PDF is refused. The text is also refused
as soon as it is longer than what is left of the message's context budget.
"""

import io
import time

from .base import Refused, megabytes

# What pypdf may inflate of one stream, and parse: more than a real page holds.
_STREAM_BYTES = 8 * 1024 * 1024
_LIMITS = {
    "zlib_maximum_output_length": _STREAM_BYTES,
    "lzw_maximum_output_length": _STREAM_BYTES,
    "run_length_maximum_output_length": _STREAM_BYTES,
    "brotli_maximum_output_length": _STREAM_BYTES,
    "array_based_stream_maximum_output_length": _STREAM_BYTES,
    "stream_decoding_work_maximum_length": 4 * _STREAM_BYTES,
    "stream_parsing_work_maximum_count": 400_000,  # operands and operators of one stream: 1 s, 60 MB
    "xform_maximum_invocations_per_extraction": 1_000,  # forms drawn while extracting one page
}


class _OutOfTime(Exception):
    """The extraction spent its CPU seconds."""


def text(name, data, caps, chars_left):
    """The text of the PDF's pages, a blank line between them; Refused when it is no PDF pypdf reads, has too
    many pages or too much content, takes too long, has no text, or more than chars_left characters."""
    import pypdf
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError, PyPdfError

    try:
        with pypdf.apply_configuration(**_LIMITS):  # this thread's context only
            reader = PdfReader(io.BytesIO(data))
            pages = len(reader.pages)
            if pages > caps.pdf_pages:
                raise Refused(f"{name} has {pages} pages; a PDF may have {caps.pdf_pages} at most.", 413)
            _check_content(name, reader.pages, caps)
            found = _extract(name, reader.pages, caps, chars_left)
    except _OutOfTime:
        raise Refused(
            f"{name} takes too long to read (more than {caps.pdf_seconds:.0f} seconds of work). "
            "Send a smaller PDF, or paste its text.",
            413,
        ) from None
    except LimitReachedError:
        raise Refused(
            f"{name} holds too much content to read here. Send a smaller PDF, or paste its text.", 413
        ) from None
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError) as error:
        if isinstance(error, Refused):
            raise
        raise Refused(f"{name} is not a PDF that can be read.") from None
    if not found:
        raise Refused(f"{name} has no text to read (a scanned PDF?).")
    return found


def _check_content(name, pages, caps):
    """Refuse a PDF whose pages' content streams add up to more than caps.pdf_content_bytes (inflated)."""
    total = 0
    for page in pages:
        total += sum(len(stream.get_data()) for stream in _content_streams(page))
        if total > caps.pdf_content_bytes:
            raise Refused(
                f"{name} has more than {megabytes(caps.pdf_content_bytes)} of page content to read "
                "(drawings, not only text). Send a smaller PDF, or paste its text.",
                413,
            )


def _content_streams(page):
    """The streams of a page's /Contents: one, an array of them (a stream may be in it more than once), none."""
    contents = page.get("/Contents")
    contents = contents.get_object() if contents is not None else None
    if contents is None:
        return []
    if hasattr(contents, "get_data"):
        return [contents]
    return [item.get_object() for item in contents if hasattr(item.get_object(), "get_data")]


def _extract(name, pages, caps, chars_left):
    """The pages' text, stopping (Refused) once it is longer than chars_left; _OutOfTime after caps.pdf_seconds
    of this thread's CPU (its own work, not the time other threads held the interpreter)."""
    deadline = time.thread_time() + caps.pdf_seconds

    def in_time(*_):
        if time.thread_time() > deadline:
            raise _OutOfTime  # pypdf skips a form that fails; the next operator of the page raises again

    texts, used = [], 0
    for page in pages:
        texts.append((page.extract_text(visitor_operand_before=in_time) or "").strip())
        used += len(texts[-1]) + 2
        if used > chars_left + 2:
            raise Refused(
                f"{name} holds more text than fits with this message: the model reads {caps.text_chars:,} "
                "characters at most, the message's own and its files' together.",
                413,
            )
    return "\n\n".join(texts).strip()
