"""Images: what one is, from its header alone, and its pixels re-encoded within a bounded memory.

Opening an image with Pillow reads its header only (format, mode, size): cheap, so the caps on pixels and on
the memory its decoding would hold are checked before anything is decoded (and before the send's rate limits,
reply slots and budgets let the work start, files.py). Then the decoding, bounded:

- a JPEG is decoded at 1/2 to 1/8 of its size by libjpeg (draft), never below the size it is cut down to;
- the decoded pixels are converted and resized to the cap a strip of rows at a time, so no full-size copy is
  ever made (Pillow's convert and resize would each make one, and premultiply an RGBA image into a third);
- the result is re-encoded from its pixels only.

What the decoding holds at its peak is estimated from the header (decode_bytes), and measured against it
(tests/test_attachments_bounds.py): the decoded image in Pillow's layout (4 bytes a pixel but for 1-byte and
16-bit modes); for WebP three times 4 bytes a pixel (libwebp's canvas, the frame it hands over, the image) and 2 more;
for a progressive or multi-scan JPEG, every DCT coefficient of the full size (libjpeg keeps them all); the
final image; and a strip cropped, converted and premultiplied.
"""

import io
import math
from contextlib import contextmanager

from PIL import Image, UnidentifiedImageError

from .base import IMAGE, Prepared, Refused, over

FORMATS = ("GIF", "JPEG", "PNG", "WEBP")
JPEG_QUALITY = 85
STRIP_PIXELS = 1_000_000  # source pixels converted and resized at a time: 4 MB of RGBA
_ONE_BYTE = {"1", "L", "P"}
_TWO_BYTES = {"I;16", "I;16L", "I;16B", "I;16N"}
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # start of frame
_SOS = 0xDA  # start of scan
_BROKEN = (OSError, SyntaxError, ValueError, EOFError)  # Pillow's ways of saying a file is truncated or corrupt


def sniff(name, data, caps):
    """(width, height) when the bytes are an image Pillow knows (its header read, nothing decoded), else None.

    Refused (413) when it has more pixels than its format may, or its decoding would hold more memory than
    caps.decode_bytes; Refused (400) when its header is damaged."""
    try:
        with _opened(name, data, caps.max_side) as (image, size, cost):
            _check(name, image.format, size, cost, caps)
            return size
    except UnidentifiedImageError:
        return None


def _check(name, fmt, size, cost, caps):
    limit = caps.jpeg_max_pixels if fmt == "JPEG" else caps.max_pixels
    if size[0] * size[1] > limit:
        raise Refused(
            f"{name} is {size[0]:,} × {size[1]:,} pixels; an image may have {limit / 1e6:.0f} megapixels at most "
            f"(the model sees {caps.max_side:,} pixels on its longest side). Send it smaller.",
            413,
        )
    if cost > caps.decode_bytes:
        words = over(cost, caps.decode_bytes)
        raise Refused(
            f"{name} would take {words[0]} of memory to open ({size[0]:,} × {size[1]:,} pixels, {fmt}); "
            f"an image may take {words[1]}. Send it smaller, or as a JPEG.",
            413,
        )


def prepare(name, data, caps):
    """The image re-encoded from its pixels only (JPEG, or PNG when it has transparency), its longest side at
    most caps.max_side: no EXIF, GPS, XMP, ICC or text chunk survives. Call sniff() first: it checks the caps."""
    with _opened(name, data, caps.max_side) as (image, _, _):
        try:
            image.load()
            has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
            resized = _resized(image, "RGBA" if has_alpha else "RGB", _capped(image.size, caps.max_side))
        except _BROKEN:
            raise Refused(f"{name} looks like an image but is damaged, so it cannot be read.") from None
    out = io.BytesIO()  # a fresh image: no info, EXIF or ICC profile to carry over
    if has_alpha:
        resized.save(out, "PNG", optimize=True)
        return Prepared(IMAGE, name, "image/png", out.getvalue())
    resized.save(out, "JPEG", quality=JPEG_QUALITY)
    return Prepared(IMAGE, name, "image/jpeg", out.getvalue())


@contextmanager
def _opened(name, data, max_side):
    """with _opened(...) as (image, original size, decode cost): its header read, a GIF at its first frame, a
    JPEG set to decode smaller; closed after, which frees its pixels at once. UnidentifiedImageError when the
    bytes are no image Pillow knows."""
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:  # an OSError too, but no image at all rather than a damaged one
        raise
    except Image.DecompressionBombError:  # Pillow's own guard, far above the caps here
        raise Refused(f"{name} is too large an image to open safely.", 413) from None
    except _BROKEN:
        raise Refused(f"{name} looks like an image but is damaged, so it cannot be read.") from None
    with image:
        try:
            image.seek(0)  # a GIF's first frame
            size = image.size
            coefficients = _jpeg_coefficients(image, data)
            _decode_smaller(image, max_side)
        except _BROKEN:
            raise Refused(f"{name} looks like an image but is damaged, so it cannot be read.") from None
        yield image, size, decode_bytes(image, max_side) + coefficients


def decode_bytes(image, max_side):
    """The memory decoding this opened image holds at its peak, in bytes, besides a JPEG's coefficients."""
    width, height = image.size  # a JPEG's as libjpeg decodes it (draft)
    if image.format == "WEBP":  # libwebp's canvas, the frame it hands over, Pillow's image; a lossy one's planes
        decoded = width * height * (4 * 3 + 2)
    else:
        decoded = width * height * _pixel_bytes(image.mode)
    capped = _capped(image.size, max_side)
    source_rows, margin, _ = _strips(image.size, capped)
    strip = (source_rows + 2 * margin + 1) * width * 4 * 3  # cropped, converted, premultiplied
    total = decoded + capped[0] * capped[1] * 4 * 2 + strip  # the final image, and the part of it being resized
    return int(total * 1.1)  # memory freed is not always reused at once: a tenth more (measured, the tests)


def _pixel_bytes(mode):
    return 1 if mode in _ONE_BYTE else 2 if mode in _TWO_BYTES else 4  # Pillow keeps RGB in 4 bytes too


def _capped(size, max_side):
    """The size with its longest side at most max_side, the ratio kept (never enlarged)."""
    scale = min(1, max_side / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _decode_smaller(image, max_side):
    """Have a large JPEG decoded at 1/2, 1/4 or 1/8 of its size (libjpeg scales as it decodes), never below the
    size it is cut down to: a 12-megapixel photo is then re-encoded in 90 ms instead of 210 (bench attach)."""
    scale = max_side / max(image.size)
    if image.format == "JPEG" and scale < 1:
        image.draft(None, (int(image.width * scale), int(image.height * scale)))


def _jpeg_coefficients(image, data):
    """The bytes libjpeg holds for a JPEG's DCT coefficients: all of them (2 bytes each, at full size, whatever
    the draft) for a progressive or multi-scan file; none for a single-scan one, which it streams."""
    if image.format != "JPEG" or (not image.info.get("progressive") and _one_scan(data)):
        return 0
    width, height = image.size
    h_max = max(h for _, h, _, _ in image.layer) or 1
    v_max = max(v for _, _, v, _ in image.layer) or 1
    return sum(
        math.ceil(width * h / h_max / 8) * math.ceil(height * v / v_max / 8) * 64 * 2 for _, h, v, _ in image.layer
    )


def _one_scan(data):
    """True when a JPEG's first scan holds all its components: libjpeg then decodes it as it reads it.

    Otherwise (components in scans of their own) it keeps every coefficient until the last scan."""
    components, at = None, 2
    while at + 4 < len(data):
        if data[at] != 0xFF:
            return False
        marker = data[at + 1]
        if marker == 0xFF:  # a fill byte
            at += 1
            continue
        if marker in _SOF and at + 9 < len(data):
            components = data[at + 9]
        if marker == _SOS:
            return components is not None and data[at + 4] == components
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return False


def _strips(size, capped):
    """(source rows a strip, rows around it the filter reads, output rows a strip) for resizing size to capped."""
    scale = size[1] / capped[1]
    source_rows = max(1, STRIP_PIXELS // size[0])
    return source_rows, math.ceil(2 * max(scale, 1)) + 1, max(1, math.floor(source_rows / scale))  # bicubic: 2


def _resized(image, mode, capped):
    """The image converted to mode and resized to capped (bicubic), a strip of rows at a time, so that no copy
    of it is made at full size (Pillow's convert would make one, and its resize of RGBA a premultiplied other).

    Each strip is cropped with the rows around it the filter reads: the strips join as one resize would."""
    if image.size == capped:
        return image.convert(mode)  # no bigger than the final image
    width, height = image.size
    _, margin, step = _strips(image.size, capped)
    scale = height / capped[1]
    out = Image.new(mode, capped)
    for top in range(0, capped[1], step):
        bottom = min(capped[1], top + step)
        first, last = top * scale, bottom * scale  # the source rows these output rows stand for
        crop_top, crop_bottom = max(0, math.floor(first) - margin), min(height, math.ceil(last) + margin)
        strip = image.crop((0, crop_top, width, crop_bottom)).convert(mode)  # crop keeps a palette's transparency
        strip = strip.convert("RGBa") if mode == "RGBA" else strip  # colours weighted by their alpha
        box = (0, first - crop_top, width, last - crop_top)
        part = strip.resize((capped[0], bottom - top), Image.Resampling.BICUBIC, box=box)
        out.paste(part.convert(mode), (0, top))
    return out
