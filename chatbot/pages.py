"""The chat page, which several blueprints answer with (chat, branches): the whole page, or the chat pane."""

from . import htmx
from .identity import current_conversations
from .llm import get_llm


def pane_context(conversation=None, **context):
    """What the chat pane's templates need: the conversation, the sidebar's entries and the models."""
    context.setdefault("entries", current_conversations().index_page())
    return {
        "conversation": conversation,
        "current_id": conversation.id if conversation else None,
        "models": get_llm().models,
        **context,
    }


def chat_page(conversation=None, status=200, **context):
    """The chat: the whole page, or the pane (with the sidebar list out of band) when htmx targets #chat."""
    return htmx.page_or_fragment(
        "chat.html", "responses/chat_pane.html", region="chat", status=status, **pane_context(conversation, **context)
    )
