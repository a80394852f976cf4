"""Blueprint "sidebar": the list of the user's conversations."""

from datetime import datetime, timedelta, timezone

from flask import Blueprint, render_template, request

from .auth import current_conversations, user_required

bp = Blueprint("sidebar", __name__, url_prefix="/sidebar")

# The sidebar renders this many entries; older ones load on demand, so a page
# costs the same at 10 or 10,000 conversations.
PAGE_SIZE = 100


@bp.app_template_global()
def sidebar_page_size():
    """How many conversations one page of the sidebar lists."""
    return PAGE_SIZE


@bp.app_template_filter("by_date")
def group_by_date(entries, today=None):
    """Group index entries (newest first) under Today, Yesterday, Previous 7 days and Older."""
    today = today or datetime.now(timezone.utc).date()
    groups = []
    for entry in entries:
        day = datetime.fromisoformat(entry["updated_at"]).date()
        if day >= today:
            label = "Today"
        elif day == today - timedelta(days=1):
            label = "Yesterday"
        elif day > today - timedelta(days=7):
            label = "Previous 7 days"
        else:
            label = "Older"
        if not groups or groups[-1][0] != label:
            groups.append((label, []))
        groups[-1][1].append(entry)
    return groups


@bp.get("/")
@user_required
def conversation_list():
    """The conversation list fragment, newest first (one storage read)."""
    offset = max(0, request.args.get("offset", 0, type=int))
    template = "_conversation_page.html" if offset else "_conversation_list.html"
    return render_template(template, entries=current_conversations().index(),
                           current_id=request.args.get("current"), offset=offset)
