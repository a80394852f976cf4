"""What keeps one visitor from spending everyone's budget, and a process from running out of threads.

One module a concern; the views use the names below (`limits.limit_messages`, `limits.open_stream`, ...):

- rates.py: Flask-Limiter's rate limits per user (guest or account) and per client address, as
  decorators on the views; in memory, or in Redis when REDIS_URL is set.
- slots/: reply slots, the replies a user and a client address may have generated at once (memory.py,
  redis.py).
- budget.py: the daily token budget per user and per client address, with room kept for the replies
  being written.
- backoff.py: log-in back-off per username and per client address.
- uploads.py: the bytes of files (uploaded or copied) a user and a client address may store a day.
- streams.py: open event streams per user and per address, file downloads per address, and both in the
  whole process.
- answers.py: the refusals (Refused, Busy) and the pages and fragments that answer them.

Every refusal is a 429 with Retry-After (a 503 when the process itself is full); a cap on what a user
stores is a 403.
"""

from . import answers, budget, rates, slots, streams, uploads
from .backoff import login_failed, login_succeeded, require_login_allowed
from .budget import token_charge
from .rates import (
    limit_copies,
    limit_downloads,
    limit_exports,
    limit_messages,
    limit_renames,
    limit_searches,
    limit_sign_ins,
    limit_signups,
    limit_streams,
)
from .slots import REPLY_SLOT_SECONDS, get_reply_slots
from .streams import hold_download, open_stream, thread_for_waiting
from .uploads import copy_charge, require_upload_room

__all__ = [
    "REPLY_SLOT_SECONDS",
    "copy_charge",
    "get_reply_slots",
    "hold_download",
    "limit_copies",
    "limit_downloads",
    "limit_exports",
    "limit_messages",
    "limit_renames",
    "limit_searches",
    "limit_sign_ins",
    "limit_signups",
    "limit_streams",
    "login_failed",
    "login_succeeded",
    "open_stream",
    "require_login_allowed",
    "require_upload_room",
    "take_reply_slot",
    "thread_for_waiting",
    "token_charge",
]


def take_reply_slot(uid, operator_pays=True):
    """Claim a slot for one more reply of uid and of this client's address (429 at either cap), then make
    sure the day's token budgets have room for it besides the replies being written (429 otherwise, and the
    slot is given back). The reply's job releases the slot when it ends."""
    slot = slots.take_reply_slot(uid)
    try:
        if operator_pays:  # the budgets cap what the operator pays for
            budget.require_room_for(slot)
    except BaseException:
        slot.release()
        raise
    return slot


def init_app(app):
    """Rate limits, reply slots, token budgets, open streams, and the answers to refusals, for the app."""
    rates.init_app(app)
    slots.init_app(app)
    budget.init_app(app)  # counted where the rate limits are: after them
    uploads.init_app(app)  # the same
    streams.init_app(app)
    answers.init_app(app)
