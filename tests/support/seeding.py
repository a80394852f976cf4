"""Fill a store with many conversations quickly (tests and benchmarks)."""

import json
from datetime import datetime, timedelta, timezone

from chatbot.conversations import Conversation, Message, encode_index, new_id


def seed_conversations(store, uid, count, messages=2, write_conversations=True):
    """Write count conversations for uid straight to the store's keys, plus their index."""
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    entries = []
    for number in range(count):
        stamp = (start + timedelta(minutes=number)).isoformat(timespec="milliseconds")
        conversation = Conversation(
            id=new_id(),
            model="SmolLM2-135M-Instruct",
            created_at=stamp,
            updated_at=stamp,
            title=f"Conversation number {number}",
            title_source="auto",
            messages=[
                Message(
                    id=new_id(),
                    role="user" if index % 2 == 0 else "assistant",
                    content=f"message {index} of conversation {number}",
                    created_at=stamp,
                )
                for index in range(messages)
            ],
        )
        if write_conversations or number == count - 1:
            store.write(
                f"users/{uid}/conversations/{conversation.id}.json", json.dumps(conversation.to_dict()).encode()
            )
        entries.append(conversation.index_entry())
    entries.reverse()
    store.write(f"users/{uid}/index.json", encode_index(entries))
    return entries
