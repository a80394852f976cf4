"""Files for the attachment tests, made here with Pillow and pypdf: a photo with EXIF GPS, PNGs, PDFs."""

import io

from PIL import Image
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

GPS_IFD = 0x8825


def photo_with_gps(size=(2400, 1200), fmt="JPEG"):
    """A photo whose EXIF holds a GPS position (and a camera make)."""
    image = Image.new("RGB", size, (200, 120, 40))
    exif = Image.Exif()
    exif[0x010F] = "FakeCam"  # Make
    exif[GPS_IFD] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}
    out = io.BytesIO()
    image.save(out, fmt, exif=exif)
    return out.getvalue()


def png(size=(64, 32), mode="RGB"):
    """A plain PNG of size and mode."""
    out = io.BytesIO()
    Image.new(mode, size).save(out, "PNG")
    return out.getvalue()


def pdf(pages, text="Quarterly revenue grew"):
    """A PDF of blank pages, the first with text."""
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(200, 200)
    if text:
        # A page with real text: pypdf's writer does not typeset, so a minimal content stream is written.
        page = writer.pages[0]
        font = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
        )
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 20 100 Td ({text}) Tj ET".encode())
        page[NameObject("/Contents")] = writer._add_object(stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def image_file(mode, size, fmt, **options):
    """A blank image of mode and size saved as fmt: a few kilobytes, however many pixels."""
    out = io.BytesIO()
    image = Image.new(mode, size)
    if mode == "P":
        options.setdefault("transparency", 0)
    image.save(out, fmt, **options)
    return out.getvalue()


def shared_content_pdf(content, pages):
    """A PDF whose pages all draw one Flate-compressed content stream (content, a few kilobytes compressed),
    after a text stream of their own: what the tester sent, 6 KB for megabytes of content a page."""
    import zlib

    packed = zlib.compress(content, 9)
    text = b"BT /F1 12 Tf 10 10 Td (hello) Tj ET\n"
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % (10 + i) for i in range(pages)), pages),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        4: b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(packed), packed),
        5: b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text),
    }
    for i in range(pages):
        objects[10 + i] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents [5 0 R 4 0 R] >>"
        )
    out, offsets = bytearray(b"%PDF-1.4\n"), {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, objects[number])
    size = max(objects) + 1
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for number in range(1, size):
        out += b"%010d 00000 n \n" % offsets[number] if number in offsets else b"0000000000 65535 f \n"
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)
