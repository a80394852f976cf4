"""The htmx conventions of this app, in one place.

A URL answers with a whole page, or with the fragment that fills one region
of the screen when htmx asks for that region. The decision is made here and
nowhere else, and every such answer says what it varies on, so a cache or the
browser's history never serves a fragment as a page.
"""

from urllib.parse import urlsplit

from flask import make_response, render_template, request

# The request headers a page-or-fragment answer depends on.
VARY = ("HX-Request", "HX-Target")


def is_htmx():
    """True for requests htmx makes; forms and links without JavaScript get whole pages.

    A history restore (the browser's back button on a page htmx pushed) asks
    for the whole page, so it is not treated as an htmx request.
    """
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-History-Restore-Request") != "true"


def target():
    """The id of the element htmx will swap the answer into, or None."""
    return request.headers.get("HX-Target") or None


def wants_fragment(region=None):
    """True when htmx asks for a fragment: any htmx request, or one aimed at region when it is named."""
    return is_htmx() and (region is None or target() == region)


def page_or_fragment(page, fragment, region=None, status=200, **context):
    """Render fragment when htmx asks for it (for region, when named), else the whole page; always send Vary."""
    template = fragment if wants_fragment(region) else page
    response = make_response(render_template(template, **context), status)
    response.vary.update(VARY)
    return response


def retarget(response, selector, swap="innerHTML"):
    """Send an htmx answer somewhere other than where the request aimed (an inline error, say)."""
    response.headers["HX-Retarget"] = selector
    response.headers["HX-Reswap"] = swap
    return response


def push_url(response, url):
    """Make htmx put url in the address bar and the history."""
    response.headers["HX-Push-Url"] = url
    return response


def current_url_path():
    """The path of the page the htmx request came from, or an empty string."""
    return urlsplit(request.headers.get("HX-Current-URL", "")).path
