"""File downloads hold a thread while their bytes are sent: counted with the open streams in the process, capped
per client address, rate-limited per address, and read from storage in chunks.

Found by an attacker's pass: 40 raw sockets asking for a share link's 9.8 MB file and never reading took
every thread of a 32-thread process (/healthz and /new timed out), each with the whole file in memory.
"""

import io
import json
import os
import re
import secrets
import socket
import time

import pytest
import requests

from chatbot import keys
from chatbot.storage.local import LocalStore
from support import Gunicorn

BIG = 8 * 1024 * 1024  # more than loopback's socket buffers hold: a client that does not read blocks the send


def seed_share(store, size=BIG):
    """A share link whose snapshot shows one file of size random bytes (written straight to the store, as a
    link's copy is); return its URL path."""
    sid, fid = secrets.token_urlsafe(16), secrets.token_urlsafe(12)
    reference = {"id": fid, "name": "big.pdf", "type": "application/pdf", "size": size, "kind": "pdf"}
    snapshot = {"id": sid, "uid": "x", "title": "t", "model": "m", "messages": [{"role": "user", "content": "x",
                "attachments": [reference]}]}  # fmt: skip
    store.write(keys.share(sid), json.dumps(snapshot).encode())
    store.write(keys.share_file(sid, fid), os.urandom(size))
    store.write(keys.share_file_about(sid, fid), json.dumps(reference).encode())
    return f"/s/{sid}/files/{fid}"


def slow_reader(url, path, address):
    """A raw socket asking for path as client address (X-Forwarded-For: the app trusts one proxy here) that
    reads the status line and then nothing; return (the socket, the status code)."""
    host, port = url.split("//")[1].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect((host, int(port)))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {address}\r\n\r\n".encode())
    status = sock.recv(12).decode()  # "HTTP/1.1 200"
    return sock, int(status.split()[1])


def answers_quickly(url):
    begun = time.monotonic()
    return requests.get(url, timeout=10).status_code == 200 and time.monotonic() - begun < 5


@pytest.mark.gunicorn
def test_under_gunicorn_slow_readers_of_a_shared_file_cannot_starve_pages_and_health_checks(tmp_path):
    settings = {
        "SECRET_KEY": secrets.token_hex(32),
        "STORAGE_URL": f"file://{tmp_path}/data",
        "LLM_BACKEND": "huggingface",
        "HF_BASE_URL": "http://127.0.0.1:9/v1",
        "CHATBOT_MODELS": "fake-model",
        "CHECK_MODELS": "false",
        "GUNICORN_THREADS": "6",  # 4 of them for streams and downloads (four fifths)
        "MAX_DOWNLOADS_PER_IP": "2",
        "TRUSTED_PROXY_HOPS": "1",
        "GRACEFUL_TIMEOUT": "5",
    }
    path = seed_share(LocalStore(f"{tmp_path}/data"))
    held = []
    with Gunicorn(settings) as server:
        try:
            held += [slow_reader(server.url, path, "198.51.100.1") for _ in range(2)]
            over_address, status = slow_reader(server.url, path, "198.51.100.1")
            assert status == 429  # a third at once from one address
            over_address.close()
            held += [slow_reader(server.url, path, "198.51.100.2") for _ in range(2)]
            assert [status for _, status in held] == [200] * 4  # each holds a thread, its file half sent
            busy, status = slow_reader(server.url, path, "198.51.100.3")
            held.append((busy, status))
            assert status == 503 and b"Retry-After:" in busy.recv(4096)  # the process has no thread to spare
            assert answers_quickly(server.url + "/healthz")
            assert answers_quickly(server.url + "/auth/login")
            assert answers_quickly(server.url + "/new")
        finally:
            for sock, _ in held:
                sock.close()
        deadline = time.monotonic() + 10  # the closed sockets' sends fail, and their threads come back
        while requests.get(server.url + path, headers={"X-Forwarded-For": "198.51.100.3"}).status_code != 200:
            assert time.monotonic() < deadline, "the closed downloads were never counted out"
            time.sleep(0.05)


def test_downloads_past_the_address_rate_limit_are_refused_and_a_304_is_free(make_app):
    app = make_app(DOWNLOAD_LIMIT_PER_IP="2 per minute")
    path = seed_share(app.extensions["store"], size=1000)
    visitor = app.test_client()
    first = visitor.get(path)
    assert first.status_code == 200 and len(first.data) == 1000
    for _ in range(3):  # the browser revalidating: no bytes sent, nothing counted
        assert visitor.get(path, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    assert visitor.get(path).status_code == 200
    refused = visitor.get(path)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "192.0.2.8"  # another address has its own count
    assert elsewhere.get(path).status_code == 200


def test_a_download_is_counted_until_its_last_byte_and_refused_at_once_when_the_process_is_full(make_app):
    app = make_app(GUNICORN_THREADS=4, MAX_OPEN_STREAMS_PER_PROCESS=1)
    path = seed_share(app.extensions["store"], size=300_000)
    counts = app.extensions["open_streams"]._open
    visitor = app.test_client()
    sending = visitor.get(path, buffered=False)  # its body not read yet: the send holds its thread
    assert counts == {"process": 1, "download-ip:127.0.0.1": 1}
    busy = app.test_client().get(path)
    assert busy.status_code == 503 and int(busy.headers["Retry-After"]) > 0
    chunks = list(sending.response)
    assert len(chunks) > 1 and len(b"".join(chunks)) == 300_000  # read from the store in chunks
    assert counts == {}
    sending.close()
    assert counts == {}
    assert app.test_client().get(path).status_code == 200


@pytest.mark.s3
def test_on_s3_a_file_is_sent_in_chunks_as_it_is_read(make_app, s3_server, monkeypatch):
    from support import new_bucket

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    app = make_app(STORAGE_URL=f"s3://{new_bucket(s3_server)}/chatbot")
    path = seed_share(app.extensions["store"], size=300_000)
    sending = app.test_client().get(path, buffered=False)
    assert sending.headers["Content-Length"] == "300000"
    chunks = list(sending.response)
    assert len(chunks) > 1 and sum(map(len, chunks)) == 300_000
    sending.close()
    assert app.extensions["open_streams"]._open == {}


def test_the_owners_files_are_counted_and_limited_like_a_links(make_app):
    app = make_app(DOWNLOAD_LIMIT_PER_IP="1 per minute")
    client = app.test_client()
    data = {"text": "x", "files": [(io.BytesIO(b"some notes"), "notes.txt")]}
    page = client.get(client.post("/new", data=data, content_type="multipart/form-data").headers["Location"]).text
    url = re.search(r"/files/[A-Za-z0-9_-]{16}", page).group(0)
    assert client.get(url).data == b"some notes"
    assert client.get(url).status_code == 429


def test_the_owners_file_must_be_revalidated_each_time_and_a_304_goes_to_the_owner_only(make_app):
    """private, no-cache with the file's id as ETag: the browser asks each time, so a deleted file is gone at once
    (before: max-age=3600, and the browser showed it for an hour after the conversation was deleted)."""
    app = make_app()
    owner = app.test_client()
    data = {"text": "x", "files": [(io.BytesIO(b"secret notes"), "notes.txt")]}
    location = owner.post("/new", data=data, content_type="multipart/form-data").headers["Location"]
    url = re.search(r"/files/[A-Za-z0-9_-]{16}", owner.get(location).text).group(0)
    served = owner.get(url)
    assert served.headers["Cache-Control"] == "private, no-cache" and served.headers["ETag"] == f'"{url[7:]}"'
    again = {"If-None-Match": served.headers["ETag"]}
    assert owner.get(url, headers=again).status_code == 304
    assert app.test_client().get(url, headers=again).status_code == 404  # someone else, however they ask
    assert owner.post(f"/sidebar/{location.split('#')[0].rsplit('/', 1)[1]}/delete").status_code == 303
    assert owner.get(url, headers=again).status_code == 404
