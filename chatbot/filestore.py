"""Attached files in the Store, next to the conversations: kept, deleted, exported, and given to the model.

A file is stored once made safe (attachments.py): its bytes at users/{uid}/files/{fid} and what it is at
users/{uid}/files/{fid}.json ({id, name, type, size, kind, text}). A message references its files by
{id, name, type, size, kind}. Files go when their conversation is deleted (the repository), with all of a
user's data (userdata.py), and are in "Download all my data".

No Flask here: files.py serves them.
"""

import base64
import json

from . import keys
from .attachments import IMAGE, PDF
from .conversations.model import is_valid_id, new_id  # the module: the repository imports this one
from .storage import read_json

NO_IMAGES = "[{name}: an image, which this model cannot see]"


def save(store, uid, prepared):
    """Store each Prepared file of one message; return the references the message keeps."""
    references = []
    for item in prepared:
        fid = new_id()
        reference = {"id": fid, "name": item.name, "type": item.mime, "size": item.size, "kind": item.kind}
        store.write(keys.file(uid, fid), item.data)
        about = {**reference, "text": item.text if item.kind == PDF else None}
        store.write(keys.file_about(uid, fid), json.dumps(about, ensure_ascii=False).encode())
        references.append(reference)
    return references


def delete(store, uid, references):
    """Delete the files a message or conversation referenced."""
    for reference in references:
        fid = reference.get("id")
        if is_valid_id(fid):
            store.delete(keys.file(uid, fid))
            store.delete(keys.file_about(uid, fid))


def delete_all(store, uid):
    """Delete every file of uid; return how many there were."""
    found = list(store.keys(keys.files(uid)))
    for key in found:
        store.delete(key)
    return sum(1 for key in found if not key.endswith(".json"))


def conversation_files(document):
    """The file references of every message of a stored conversation document."""
    return [reference for message in document.get("messages", []) for reference in message.get("attachments") or []]


def stored(store, uid):
    """(fid, name, key) of each file of uid, for the export."""
    for key in sorted(store.keys(keys.files(uid))):
        if key.endswith(".json"):
            about, _ = read_json(store, key)
            if about and is_valid_id(about.get("id")):
                yield about["id"], about.get("name") or "file", keys.file(uid, about["id"])


def _file_text(store, uid, reference):
    """What the model reads of a text or PDF file ('' when it went away)."""
    if reference.get("kind") == PDF:
        about, _ = read_json(store, keys.file_about(uid, reference["id"]))
        return (about or {}).get("text") or ""
    found = store.read(keys.file(uid, reference["id"]))
    return found[0].decode("utf-8-sig") if found else ""


def _image_part(store, uid, reference):
    found = store.read(keys.file(uid, reference["id"]))
    if found is None:
        return None
    encoded = base64.b64encode(found[0]).decode()
    return {"type": "image_url", "image_url": {"url": f"data:{reference['type']};base64,{encoded}"}}


def expand_turn(store, uid, turn, sees_images):
    """A turn as the model gets it: the files' text labelled with their names before the message; images as
    image parts (an OpenAI-style content list) for a model that sees them, else a note that it cannot."""
    references = turn.get("attachments") or []
    if not references:
        return {"role": turn["role"], "content": turn["content"]}
    texts, images = [], []
    for reference in references:
        if not is_valid_id(reference.get("id")):
            continue
        if reference.get("kind") != IMAGE:
            texts.append(f"File {reference['name']}:\n```\n{_file_text(store, uid, reference)}\n```")
        elif sees_images:
            part = _image_part(store, uid, reference)
            images += [part] if part else []
        else:
            texts.append(NO_IMAGES.format(name=reference["name"]))
    text = "\n\n".join([*texts, turn["content"]])
    if not images:
        return {"role": turn["role"], "content": text}
    return {"role": turn["role"], "content": [{"type": "text", "text": text}, *images]}


def turns_before(conversations, conversation, mid, vision_models):
    """The turns the model sees when answering reply mid (Conversation.history_before), each with its files'
    text, and its images when the reply's model is one of vision_models."""
    sees_images = conversation.reply(mid).model in vision_models
    turns = conversation.history_before(mid)
    return [expand_turn(conversations.store, conversations.uid, turn, sees_images) for turn in turns]
