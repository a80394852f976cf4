"""The length of what a form posts, counted as the browser counts it for maxlength, so that the two agree.

A textarea's maxlength counts a line break as one character, but the form posts it as CRLF; and it counts
UTF-16 code units, so an emoji (or any character outside the Basic Multilingual Plane) counts two. The server
reads a field with its line breaks as LF (and stores it so), and counts code units: a text the browser let
through at the limit is accepted, and one over it is refused, with or without JavaScript. The server matches
the browser, not the other way round: maxlength is the browser's own, and it works without JavaScript.
"""

from flask import request


def form_text(name):
    """The form's field name, with its line breaks as LF (a browser posts CRLF), or "" when it is missing."""
    return request.form.get(name, "").replace("\r\n", "\n").replace("\r", "\n")


def length(text):
    """text's length as the browser counts it (maxlength, a string's length and slice()): UTF-16 code units,
    two for an emoji. Live Markdown patches (render.py) are measured in it too."""
    return len(text) + sum(1 for character in text if ord(character) > 0xFFFF)


def characters(text):
    """text's length in words, "4,001 characters", saying how an emoji counts when there is one."""
    count = length(text)
    note = " (an emoji counts as two)" if count != len(text) else ""
    return f"{count:,} characters{note}"
