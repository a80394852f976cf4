"""Files' names: kept safe at upload (no path separator, control character, "." or ".."), and saved under a name
that cannot render or run (a text file named page.html is saved as page.html.txt, a PDF named page.html as
page.html.pdf), in the download attribute and in Content-Disposition alike.

Found by an attacker's pass: `x;filename=evil.html` kept .html in filename* and the download attribute (a share
visitor saved a .html file holding the uploader's text), and a file named `..` was exported as files/<id>/..
"""

import html
import io
import re
import zipfile
from urllib.parse import quote

from chatbot.filestore import safe_file_name
from support import stored_conversations
from support.files import pdf


def send(client, files):
    data = {"text": "Names", "files": [(io.BytesIO(body), name) for name, body in files]}
    return client.post("/new", data=data, content_type="multipart/form-data")


def saved_names(client, page):
    """(the download attribute, the name Content-Disposition's filename* gives) of each file link of page."""
    found = []
    for url, attribute in re.findall(r'<a href="(/files/[A-Za-z0-9_-]{16})" download="([^"]*)"', page):
        disposition = client.get(url).headers["Content-Disposition"]
        found.append((html.unescape(attribute), disposition.split("filename*=UTF-8''")[1]))
    return found


def test_a_name_that_would_render_or_run_is_saved_with_an_extension_of_its_type(make_app):
    app = make_app()
    client = app.test_client()
    files = [("x;filename=evil.html", b"<script>alert(1)</script>"), ("notes.md", b"# Notes"), ("a.SVG. ", b"<svg/>")]
    response = send(client, [*files, ("report.html", pdf(1))])
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).text
    expected = ["x;filename=evil.html.txt", "notes.md", "a.SVG..txt", "report.html.pdf"]
    assert saved_names(client, page) == [(name, quote(name, safe="")) for name in expected]
    assert ">x;filename=evil.html</a>" in page  # shown as it was named


def test_dots_and_separators_are_not_kept_as_a_name_nor_exported_as_a_path(make_app):
    app = make_app()
    client = app.test_client()
    assert send(client, [("..", b"dots"), (".", b"dot"), ("b\x07c.txt", b"bell")]).status_code == 303
    (conversation,) = stored_conversations(app)
    names = [file["name"] for file in conversation["messages"][0]["attachments"]]
    assert names == ["file", "file", "bc.txt"]
    entries = zipfile.ZipFile(io.BytesIO(client.get("/account/export.zip").data)).namelist()
    assert sorted(entry.rsplit("/", 1)[1] for entry in entries if entry.startswith("files/")) == sorted(names)
    assert [safe_file_name(name) for name in ("..", " . ", "a/b", "x\x00y", "ok.txt")] == [
        "file", "file", "a_b", "xy", "ok.txt"
    ]  # fmt: skip
