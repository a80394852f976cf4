"""Time to first token with a 2 MB photo attached, against the same message without one (issue 21).

Timed inside Chromium as bench/first_token.py times a send (Enter keydown to the first text of the reply), with
the same FAKE model server (40 ms before its first piece, no CPU), the app under gunicorn. Each round is two new
chats, one with the photo and one without, in alternating order. Where the difference goes is measured on the
server side: the app's own JSON log lines (the send's request duration, the reply's first piece after its job
started), the bytes the model was sent, and, in this process on the same photo, each step a send with a photo
adds (reading the multipart body, re-encoding the image, storing it, making the model's image part).
"""

import io
import json
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from chatbot import attachments, filestore
from chatbot.conversations import new_id
from chatbot.storage.local import LocalStore
from support import FakeModelServer

from .first_token import FIRST_DELAY, PIECES, app_send, open_new_chat
from .registry import Row, benchmark, median
from .servers import bench_gunicorn

ROUNDS = 8
PHOTO_BYTES = 2 * 1024 * 1024
PHOTO_SIDE = (4000, 3000)  # a 12-megapixel phone photo
TEXT = "What is in this picture?"


def noisy_photo(target=PHOTO_BYTES, size=PHOTO_SIDE):
    """A JPEG of about target bytes (at least), 12 megapixels of gradient and noise, with EXIF (a camera, GPS)."""
    width, height = size
    gradient = Image.linear_gradient("L").resize(size)
    noise = Image.effect_noise(size, 40)
    image = Image.merge("RGB", (gradient, noise, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    exif = Image.Exif()
    exif[0x010F] = "BenchCam"  # Make
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}  # GPS
    low, high, best = 5, 95, None
    while low <= high:  # the lowest quality that reaches the target size
        quality = (low + high) // 2
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality, exif=exif)
        if out.tell() >= target:
            best, high = out.getvalue(), quality - 1
        else:
            low = quality + 1
    return best or out.getvalue()


def send_log(log_path):
    """From the app's JSON log: the duration of each POST /new and each reply's first piece, in order (ms)."""
    posts, firsts = [], []
    for line in Path(log_path).read_text().splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry.get("event") == "request" and entry.get("method") == "POST" and entry.get("route") == "/new":
            posts.append(entry["duration_ms"])
        elif entry.get("event") == "reply":
            firsts.append(entry["ttft_ms"])
    return posts, firsts


def measure(browser, app_url, photo_path, rounds=ROUNDS):
    """Interleave new chats with the photo and without; return ([Timed with], [Timed without], order)."""
    page = browser.new_page(bypass_csp=True)  # the harness's evaluate needs eval, which the app's CSP forbids
    page.goto(app_url)
    with_photo, without, order = [], [], []
    for number in range(rounds):
        for attached in (True, False) if number % 2 == 0 else (False, True):
            open_new_chat(page)
            if attached:
                page.set_input_files("#composer-files", photo_path)
            (with_photo if attached else without).append(app_send(page, f"{TEXT} ({number})"))
            order.append(attached)
            page.wait_for_function("document.querySelector('#chat-title').textContent !== 'Untitled chat'")
    page.close()
    return with_photo, without, order


def _timed(function, times=5):
    """The median ms of function() over times runs."""
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        function()
        spent.append((time.perf_counter() - started) * 1000)
    return statistics.median(spent)


def steps_in_process(photo):
    """ms of each step a photo adds to a send, on this photo, in this process; and the model request's bytes."""
    builder = EnvironBuilder(method="POST", data={"text": TEXT, "files": (io.BytesIO(photo), "photo.jpg")})
    environ = builder.get_environ()
    body = environ["wsgi.input"].read()

    def parse():
        Request({**environ, "wsgi.input": io.BytesIO(body)}).files["files"].read()

    prepared = attachments.prepare("photo.jpg", photo)
    store, uid = LocalStore(tempfile.mkdtemp()), new_id()
    [reference] = filestore.save(store, uid, [prepared])
    turn = {"role": "user", "content": TEXT, "attachments": [reference]}
    return {
        "upload_bytes": len(body),
        "parse": _timed(parse),
        "reencode": _timed(lambda: attachments.prepare("photo.jpg", photo)),
        "store": _timed(lambda: filestore.save(store, uid, [prepared])),
        "image_part": _timed(lambda: json.dumps(filestore.expand_turn(store, uid, turn, True))),
        "stored_bytes": prepared.size,
        "stored_side": Image.open(io.BytesIO(prepared.data)).size,
    }


def split(values, order, attached):
    """The values of the rounds with (attached=True) or without the photo."""
    return [value for value, was in zip(values, order, strict=False) if was is attached]


def rows(with_photo, without, order, posts, firsts, model_bytes, steps, photo_bytes):
    """The table's rows: the first token with and without, and where the difference goes."""
    app_with, app_without = median(send.text for send in with_photo), median(send.text for send in without)
    post_with, post_without = median(split(posts, order, True)), median(split(posts, order, False))
    first_with, first_without = median(split(firsts, order, True)), median(split(firsts, order, False))
    sent_with, sent_without = median(split(model_bytes, order, True)), median(split(model_bytes, order, False))
    side = "×".join(str(part) for part in steps["stored_side"])
    return [
        Row(
            "Time to first token with a 2 MB photo attached vs the same message without, in Chromium",
            f"{app_with:.0f} ms vs {app_without:.0f} ms: +{app_with - app_without:.0f} ms",
            "—",
            None,
            f"median of {len(with_photo)} new chats each, interleaved; a {photo_bytes / 1048576:.1f} MB 12-megapixel "
            f"JPEG with EXIF; Enter keydown → first text (page's own listeners); fake vision model, "
            f"{FIRST_DELAY * 1000:.0f} ms before its first piece; app under gunicorn",
        ),
        Row(
            "Where a photo's time goes (server side, medians)",
            f"the send's request {post_with:.0f} vs {post_without:.0f} ms (of it: multipart "
            f"{steps['parse']:.0f} ms, re-encoding {steps['reencode']:.0f} ms, storing {steps['store']:.1f} ms); "
            f"job start → first piece {first_with:.0f} vs {first_without:.0f} ms (image part "
            f"{steps['image_part']:.1f} ms); model request {sent_with / 1024:.0f} KB vs {sent_without / 1024:.1f} KB",
            "—",
            None,
            f"request and first piece: the app's JSON log lines (duration_ms of POST /new, ttft_ms of the reply); "
            f"steps: the same photo in this process, folder store; upload {steps['upload_bytes'] / 1048576:.1f} MB "
            f"over loopback; stored and sent re-encoded at {side}, {steps['stored_bytes'] / 1024:.0f} KB",
        ),
    ]


@benchmark("attach")
def attach(servers):
    """Time to first token with a 2 MB photo attached against the same message without, and where it goes."""
    photo = noisy_photo()
    photo_path = Path(tempfile.mkdtemp()) / "photo.jpg"
    photo_path.write_bytes(photo)
    with FakeModelServer(pieces=PIECES, interval=0.01, first_delay=FIRST_DELAY) as model:
        settings = {"HF_TOKEN": "bench", "HF_BASE_URL": model.url, "CHATBOT_MODELS": "fake-model"}
        with bench_gunicorn(**settings, VISION_MODELS="fake-model", LOG_FORMAT="json") as server:
            with_photo, without, order = measure(servers.browser, server.url, str(photo_path))
            posts, firsts = send_log(server.log_path)
        model_bytes = [len(json.dumps(body)) for body in model.bodies if body.get("max_tokens", 1024) > 30]
    steps = steps_in_process(photo)
    return rows(with_photo, without, order, posts, firsts, model_bytes, steps, len(photo))
