"""What reading a file may cost (chatbot/attachments/): an image's pixels and decoding memory, capped from its
header before anything is decoded; a PDF's content and CPU time; the decodes a process runs at once.

Real Pillow images and real pypdf PDFs, made here; the peak memory of a decoding is measured in a process of
its own (its peak resident size, VmHWM, before and after)."""

import io
import json
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from chatbot import attachments
from chatbot.attachments import Caps, Refused, images, prepare
from support.files import image_file, shared_content_pdf

ROOT = Path(__file__).resolve().parent.parent


def test_a_tiny_lossless_webp_of_40_megapixels_is_refused_from_its_header():
    """The tester's 1.5 KB WebP of 6300 x 6300 RGBA: decoded, it took about 800 MB; refused now, nothing decoded."""
    bomb = image_file("RGBA", (6300, 6300), "WEBP", lossless=True)
    assert len(bomb) < 2000
    started = time.process_time()
    with pytest.raises(Refused, match="16 megapixels at most") as refused:
        prepare("bomb.webp", bomb)
    assert refused.value.status == 413 and time.process_time() - started < 0.5


def test_a_palette_png_with_transparency_is_capped_like_any_other_image():
    bomb = image_file("P", (6300, 6300), "PNG")  # 5 KB; about 400 MB once converted to RGBA at full size
    with pytest.raises(Refused, match="16 megapixels at most"):
        prepare("bomb.png", bomb)
    assert prepare("fine.png", image_file("P", (4000, 4000), "PNG")).mime == "image/png"  # 16 MP: decoded


def test_a_jpeg_may_have_more_pixels_but_a_progressive_one_is_capped_by_its_memory():
    """A progressive JPEG's every coefficient is kept by libjpeg, whatever the draft: 6 bytes a pixel unsampled."""
    size = (4500, 4500)  # 20 megapixels: under the JPEG cap, over the others'
    assert prepare("big.jpg", image_file("RGB", size, "JPEG", subsampling=0)).mime == "image/jpeg"
    with pytest.raises(Refused, match="of memory to open") as refused:
        prepare("big.jpg", image_file("RGB", size, "JPEG", subsampling=0, progressive=True))
    assert refused.value.status == 413
    with pytest.raises(Refused, match="25 megapixels at most"):
        prepare("huge.jpg", image_file("RGB", (6000, 4500), "JPEG"))


def test_a_webp_is_capped_by_the_memory_its_decoding_holds():
    """libwebp decodes into a canvas of its own and hands the frame over as bytes: 14 bytes a pixel here."""
    assert prepare("ok.webp", image_file("RGB", (2400, 2400), "WEBP")).mime == "image/jpeg"
    with pytest.raises(Refused, match="of memory to open"):
        prepare("big.webp", image_file("RGB", (3200, 3200), "WEBP"))


MEASURE = """
import json, sys
from chatbot.attachments import Caps, images, prepare

def peak():  # this process's peak resident size (ru_maxrss would count the parent's, inherited at exec)
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024

data = sys.stdin.buffer.read()
with images._opened("x", data, Caps().max_side) as (image, size, cost):
    pass
before = peak()
prepared = prepare("x", data)
print(json.dumps({"peak": peak() - before, "estimate": cost, "mime": prepared.mime}))
"""


@pytest.mark.parametrize(
    "mode, size, fmt, options",
    [
        ("RGBA", (4000, 4000), "PNG", {}),  # at the cap: 64 MB decoded
        ("P", (4000, 4000), "PNG", {}),  # a palette with transparency, converted a strip at a time
        ("RGB", (4000, 4000), "JPEG", {"progressive": True}),  # coefficients kept at full size
        ("RGBA", (2400, 2400), "WEBP", {"lossless": True}),  # libwebp's buffers
        ("RGBA", (16000, 1000), "PNG", {}),  # a wide one: long strips
    ],
)
def test_decoding_an_image_at_the_caps_holds_no_more_than_its_estimate(mode, size, fmt, options):
    """Measured in a fresh process: the peak resident size a decoding adds is within the estimate the caps are
    checked against (a conversion, a premultiplied copy or a resize of the whole image would each exceed it)."""
    data = image_file(mode, size, fmt, **options)
    done = subprocess.run(
        [sys.executable, "-c", MEASURE], input=data, capture_output=True, cwd=ROOT, check=True, timeout=60
    )
    measured = json.loads(done.stdout)
    assert measured["estimate"] <= Caps().decode_bytes
    assert 0 < measured["peak"] <= measured["estimate"], measured


def test_an_image_is_resized_a_strip_at_a_time_as_one_resize_would():
    """The strips join without a seam: the result is Pillow's own resize of the whole image (premultiplied)."""
    width, height = 3000, 2000
    gradient = Image.linear_gradient("L").resize((width, height))
    image = Image.merge("RGBA", [gradient, gradient.transpose(Image.Transpose.ROTATE_180), gradient, gradient])
    out = io.BytesIO()
    image.save(out, "PNG")
    prepared = Image.open(io.BytesIO(prepare("gradient.png", out.getvalue()).data))
    assert prepared.size == (1568, 1045) and prepared.mode == "RGBA"
    whole = image.convert("RGBa").resize(prepared.size, Image.Resampling.BICUBIC).convert("RGBA")
    differences = [abs(a - b) for a, b in zip(prepared.tobytes(), whole.tobytes(), strict=True)]
    assert max(differences) <= 2


@pytest.fixture
def decodes_held():
    """Both of the process's decodes taken, as by two uploads being read; given back at the end."""
    for _ in range(attachments.base.DECODES_AT_ONCE):
        assert attachments.DECODES.acquire(timeout=5)
    held = [attachments.base.DECODES_AT_ONCE]
    yield held
    for _ in range(held[0]):
        attachments.DECODES.release()


def test_an_image_waits_for_a_free_decode_and_is_read_once_one_frees(decodes_held):
    photo = image_file("RGB", (3000, 2000), "JPEG")
    done = threading.Event()
    result = []
    reader = threading.Thread(target=lambda: (result.append(prepare("photo.jpg", photo)), done.set()))
    reader.start()
    assert not done.wait(0.3)  # queued behind the two decodes
    attachments.DECODES.release()
    decodes_held[0] -= 1
    assert done.wait(10) and result[0].mime == "image/jpeg"
    reader.join()


def test_an_image_that_finds_no_free_decode_in_time_is_refused_as_busy(decodes_held, monkeypatch):
    monkeypatch.setattr(attachments.base, "DECODE_WAIT_SECONDS", 0.1)
    with pytest.raises(Refused, match="busy") as refused:
        prepare("photo.jpg", image_file("RGB", (300, 200), "JPEG"))
    assert refused.value.status == 503
    assert prepare("notes.txt", b"text needs no decode").text == "text needs no decode"


def test_a_small_pdf_of_megabytes_of_shared_content_is_refused_before_extracting():
    """The tester's PDF: 50 pages drawing one 3.6 MB stream of "q Q"; about 4 s of pypdf a page before."""
    bomb = shared_content_pdf(b"q Q " * 900_000, 50)
    assert len(bomb) < 20_000
    started = time.process_time()
    with pytest.raises(Refused, match="more than 3 MB of page content") as refused:
        prepare("bomb.pdf", bomb)
    assert refused.value.status == 413 and time.process_time() - started < 1.5


def test_one_page_of_too_many_operators_is_refused_by_pypdfs_own_parsing_limit():
    started = time.process_time()
    with pytest.raises(Refused, match="too much content to read"):
        prepare("dense.pdf", shared_content_pdf(b"q Q " * 700_000, 1))  # 2.8 MB: under the content cap
    assert time.process_time() - started < 3


def test_a_pdf_that_takes_too_long_to_read_is_refused():
    """The time bound, alone: the content cap lifted, 6 MB of content (600 KB a page) takes seconds to parse."""
    caps = replace(Caps(), pdf_seconds=0.3, pdf_content_bytes=64 * 1024 * 1024)
    started = time.process_time()
    with pytest.raises(Refused, match="takes too long to read") as refused:
        prepare("slow.pdf", shared_content_pdf(b"q Q " * 150_000, 10), caps)
    assert refused.value.status == 413 and time.process_time() - started < 2


def test_the_text_of_a_message_and_all_its_files_must_fit_the_context_budget():
    """Each file under CONTEXT_CHARS alone, but 4 of them and the message 4.7 times over it together."""
    caps = Caps(text_chars=12000)
    files = [(f"f{k}.txt", ("word " * 2399 + "abcd").encode()) for k in range(4)]  # 11,999 characters each
    with pytest.raises(Refused, match="come to 56,") as refused:
        attachments.receive(files, caps, "q" * 7999)
    assert refused.value.status == 413
    one = [("f.txt", b"x" * 11000)]
    received = attachments.receive(one, caps, "Summarise this")  # counted as the model reads it, labelled
    assert received.chars_left == 12000 - len(attachments.model_text("f.txt", "x" * 11000) + "\n\nSummarise this")
    with pytest.raises(Refused, match="come to 12,0"):
        attachments.receive(one, caps, "q" * 1000)


def test_a_pdfs_text_counts_with_the_message_and_stops_being_read_once_over():
    from support.files import pdf

    caps = Caps(text_chars=200)
    assert attachments.receive([("r.pdf", pdf(1))], caps, "Short").prepare()[0].text == "Quarterly revenue grew"
    with pytest.raises(Refused, match="more text than fits with this message"):
        attachments.receive([("r.pdf", pdf(1))], caps, "q" * 180).prepare()


def test_the_kind_of_a_file_is_told_without_decoding_it():
    received = attachments.receive([("a.png", image_file("RGB", (3000, 3000), "PNG")), ("n.md", b"# hi")])
    assert [upload.kind for upload in received.files] == ["image", "text"] and received.has_images
    assert received.size == sum(len(upload.data) for upload in received.files)
    assert images.sniff("n.md", b"# hi", Caps()) is None
