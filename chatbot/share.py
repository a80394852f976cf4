"""Blueprint "share": read-only links to a snapshot of a conversation (the domain is in shares.py).

The owner makes and revokes links on the conversation's share page (or on
/shares, every link at once). The link, /s/<share id>, is a plain server-rendered
page that loads no script: anyone who has it reads the snapshot and nothing
else, and may copy it into their own conversations to go on with it.
Everything here is a link or a form, so it all works without JavaScript.
"""

from flask import Blueprint, make_response, redirect, render_template, request, url_for

from . import filestore, keys, limits
from .files import file_response
from .identity import current_conversations, current_uid, user_required
from .shares import Shares, read_snapshot, shared_file
from .storage import get_store

bp = Blueprint("share", __name__)


def _shares():
    return Shares(get_store(), current_uid())


@bp.get("/c/<cid>/share")
@user_required
def manage(cid):
    """The share page of one of your conversations: make a link, see and revoke its links.

    ?leaf= is the last message on the page the owner came from (the header's link names it): the link shows
    that branch, which another tab or a search result's ?m= may have made other than the stored one."""
    conversation = current_conversations().get(cid)  # someone else's conversation is a 404
    leaf = request.args.get("leaf") or None
    return render_template(
        "share.html",
        conversation=conversation,
        shown=conversation.shown_path(leaf),  # a message of another conversation is a 404
        leaf=leaf,
        links=_shares().links(cid),
        created=request.args.get("created"),
    )


@bp.post("/c/<cid>/share")
@user_required
@limits.limit_copies
def create(cid):
    """Make a new link to a snapshot of the conversation as it is now: the branch down to the form's leaf."""
    charge = limits.copy_charge(current_uid(), "The link was not made")  # its files are copies, the owner's
    leaf = request.form.get("leaf") or None
    entry = _shares().create(current_conversations(), cid, charge, leaf)  # someone else's conversation is a 404
    return redirect(url_for("share.manage", cid=cid, created=entry["id"], leaf=leaf), 303)


@bp.get("/shares")
@user_required
def links():
    """Every link you made, to revoke them."""
    return render_template("shares.html", links=_shares().links())


@bp.post("/s/<sid>/revoke")
@user_required
def revoke(sid):
    """Revoke one of your links: it is a 404 from now on."""
    entry = _shares().revoke(sid)  # not yours, or gone: 404
    if request.form.get("back") == "conversation":
        return redirect(url_for("share.manage", cid=entry["cid"], leaf=request.form.get("leaf") or None), 303)
    return redirect(url_for("share.links"), 303)


@bp.get("/s/<sid>")
def snapshot(sid):
    """The shared snapshot, for anyone with the link: no sidebar, no composer, no scripts, not indexed."""
    response = make_response(render_template("shared.html", snapshot=read_snapshot(get_store(), sid), sid=sid))
    # Revoking must take effect at once, and the page carries a CSRF token: no shared cache may keep it.
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@bp.get("/s/<sid>/files/<fid>")
@limits.limit_downloads
def file(sid, fid):
    """A file the snapshot shows, for anyone with the link, served as files.py serves one to its owner (a
    revoked link's files are a 404 at once: the browser asks each time)."""
    store = get_store()
    about = shared_file(store, sid, fid)  # revoked, or not a file of this snapshot: 404
    response = file_response(store, keys.share_file(sid, fid), about, fid)
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@bp.post("/s/<sid>/continue")
@user_required
@limits.limit_copies
def continue_chat(sid):
    """Copy the snapshot, with its files, into the visitor's own conversations (a guest's too); open the copy."""
    shared = read_snapshot(get_store(), sid)
    # Its files come along, as copies of the visitor's own: the copy goes on without the link (a revoke), and
    # the model reads them in the turns it is sent. Its instructions do not: they would be the copy's system
    # prompt, which its new owner did not write and would not see, so a link could plant one (the share page
    # shows them, and says they are not copied).
    conversation = current_conversations().start_copy(
        shared.get("title"),
        shared["model"],
        shared["messages"],
        None,
        filestore.share_place(sid),
        charge=limits.copy_charge(current_uid(), "This chat was not copied"),  # the visitor's allowance
    )
    return redirect(url_for("chat.conversation", cid=conversation.id), 303)
