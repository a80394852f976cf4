"""The file pipeline (chatbot/attachments.py): real Pillow images and real pypdf PDFs made here."""

import io

import pytest
from PIL import Image
from pypdf import PdfReader

from chatbot.attachments import IMAGE, PDF, TEXT, Caps, Refused, prepare, receive
from support.files import GPS_IFD, pdf, photo_with_gps, png


def test_a_photo_is_reencoded_without_its_exif_gps_and_capped_in_size():
    original = photo_with_gps()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)  # the fixture does carry GPS
    prepared = prepare("holiday.jpg", original)
    assert (prepared.kind, prepared.mime) == (IMAGE, "image/jpeg")
    image = Image.open(io.BytesIO(prepared.data))
    assert max(image.size) == 1568 and image.size == (1568, 784)
    assert not image.getexif() and "exif" not in image.info
    assert b"FakeCam" not in prepared.data


def test_webp_and_the_first_frame_of_a_gif_are_images_and_transparency_stays_png():
    out = io.BytesIO()
    frames = [Image.new("P", (20, 20), color) for color in (1, 2)]
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    assert prepare("anim.gif", out.getvalue()).kind == IMAGE
    webp = io.BytesIO()
    Image.new("RGB", (30, 30)).save(webp, "WEBP")
    assert prepare("x.webp", webp.getvalue()).mime == "image/jpeg"
    assert prepare("alpha.png", png(mode="RGBA")).mime == "image/png"


def test_the_type_comes_from_the_bytes_not_the_name():
    assert prepare("notes.png.txt", png()).kind == IMAGE  # an image whatever its name says
    assert prepare("data.bin", b"a,b\n1,2\n").kind == TEXT


def test_a_decompression_bomb_is_refused():
    bomb = png(size=(8000, 8000), mode="1")  # 64 megapixels in a few kilobytes
    assert len(bomb) < 100_000
    with pytest.raises(Refused, match="64 megapixels|16 megapixels at most") as refused:
        prepare("bomb.png", bomb)
    assert refused.value.status == 413


@pytest.mark.parametrize(
    "body",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(1)</script></svg>',
        b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>",
    ],
)
def test_an_svg_or_html_file_renamed_png_is_refused(body):
    with pytest.raises(Refused, match="named like an image"):
        prepare("cat.png", body)


def test_an_html_file_by_its_own_name_is_text_for_the_model():
    prepared = prepare("page.html", b"<p>hello</p>")
    assert (prepared.kind, prepared.mime, prepared.text) == (TEXT, "text/plain", "<p>hello</p>")


def test_a_corrupt_image_and_a_binary_file_are_refused():
    with pytest.raises(Refused, match="damaged"):
        prepare("cut.png", png()[:60])
    with pytest.raises(Refused, match="not a type"):
        prepare("a.bin", b"\x00\x01\x02binary")


def test_caps_per_file_per_message_and_on_text():
    caps = Caps(file_bytes=1000, message_bytes=1500, message_files=2, text_chars=50)
    with pytest.raises(Refused, match="is 1001 bytes; a file may be at most 1000 bytes") as refused:
        prepare("big.txt", b"x" * 1001, caps)
    assert refused.value.status == 413
    with pytest.raises(Refused, match="2 files at most"):
        receive([("a.txt", b"a"), ("b.txt", b"b"), ("c.txt", b"c")], caps)
    with pytest.raises(Refused, match="a message may carry"):
        receive([("a.txt", b"a" * 800), ("b.txt", b"b" * 800)], caps)
    with pytest.raises(Refused, match="reads 50 at most"):
        prepare("long.md", b"y" * 51, caps)


def test_a_pdf_gives_its_text_and_one_over_the_page_cap_is_refused():
    prepared = prepare("report.pdf", pdf(2))
    assert prepared.kind == PDF and "Quarterly revenue grew" in prepared.text
    assert len(PdfReader(io.BytesIO(prepared.data)).pages) == 2
    with pytest.raises(Refused, match="51 pages") as refused:
        prepare("long.pdf", pdf(51))
    assert refused.value.status == 413


def test_a_large_photo_decoded_smaller_keeps_the_capped_size_and_loses_its_exif():
    """A 12-megapixel JPEG is decoded at half size by libjpeg (the re-encoding's shortcut), never below the cap."""
    prepared = prepare("phone.jpg", photo_with_gps((4000, 3000)))
    image = Image.open(io.BytesIO(prepared.data))
    assert image.size == (1568, 1176) and not image.getexif() and b"FakeCam" not in prepared.data
