"""Attached files in the Store, next to the conversations: kept, deleted, exported, and given to the model.

A file is stored once made safe (attachments.py): its bytes at users/{uid}/files/{fid} and what it is at
users/{uid}/files/{fid}.json ({id, name, type, size, kind, text}). A message references its files by
{id, name, type, size, kind}. Files go when their conversation is deleted (the repository), with all of a
user's data (userdata.py), and are in "Download all my data".

A copy of messages gets copies of their files, under new ids, so that it never depends on the original:
a fork (the same user's place), a share link (its own place, shares/{sid}/files/, gone with the link), and
"Continue this chat" (from the link's place to the visitor's). A place is where a file's two keys are.

No Flask here: files.py serves them.
"""

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from . import keys
from .attachments import IMAGE, PDF, model_text
from .keys import is_valid_id, new_id
from .storage import read_json

NO_IMAGES = "[{name}: an image, which this model cannot see]"
EARLIER_IMAGE = "[{name}: an image sent earlier, no longer shown]"


@dataclass(frozen=True)
class Place:
    """Where files are kept: the keys of a file's bytes and of what it is, from its id."""

    data: Callable[[str], str]
    about: Callable[[str], str]


def user_place(uid):
    """User uid's own files (users/{uid}/files/)."""
    return Place(partial(keys.file, uid), partial(keys.file_about, uid))


def share_place(sid):
    """The copies a share link shows (shares/{sid}/files/)."""
    return Place(partial(keys.share_file, sid), partial(keys.share_file_about, sid))


def safe_file_name(name):
    """A file's name as kept and exported: no path separator or control character, and never "." or ".." (a
    zip entry files/{id}/.. would point outside its folder); "file" when nothing is left."""
    name = "".join("_" if ch in "/\\" else ch for ch in name or "" if ch.isprintable())
    return name if name.strip(". ") else "file"


def save(store, uid, prepared):
    """Store each Prepared file of one message; return the references the message keeps.

    Nothing stays when a write fails: the files written before it are deleted again."""
    references = []
    try:
        for item in prepared:
            fid = new_id()
            name = safe_file_name(item.name)
            reference = {"id": fid, "name": name, "type": item.mime, "size": item.size, "kind": item.kind}
            references.append(reference)
            store.write(keys.file(uid, fid), item.data)
            about = {**reference, "text": item.text if item.kind == PDF else None}
            store.write(keys.file_about(uid, fid), json.dumps(about, ensure_ascii=False).encode())
    except BaseException:
        delete(store, uid, references)
        raise
    return references


def delete(store, uid, references, place=None):
    """Delete the files a message or conversation referenced (uid's own, or those of another place)."""
    place = place or user_place(uid)
    for reference in references:
        fid = reference.get("id")
        if is_valid_id(fid):
            store.delete(place.data(fid))
            store.delete(place.about(fid))


def copy_messages(store, messages, source, target, charge=None):
    """Copy the files of messages ({..., attachments}) from place source to place target under new ids.

    Returns (the messages with their references to the copies, the copies' references). A file referenced
    twice (two versions of an edited message) is copied once; one gone from the source is left out. When a
    copy fails, the copies made so far are deleted again. charge, when given, is called with the bytes to be
    copied before anything is (a copy counts toward the copier's upload allowance); it may refuse by raising."""
    if charge is not None:
        charge(copy_size(messages))
    copies, renamed = [], {}
    try:
        copied = [_with_copies(store, message, source, target, copies, renamed) for message in messages]
    except BaseException:
        delete(store, None, copies, target)
        raise
    return copied, copies


def copy_size(messages):
    """The bytes of the files messages reference, each file once."""
    sizes = {}
    for message in messages:
        for reference in message.get("attachments") or []:
            if is_valid_id(reference.get("id")):
                sizes[reference["id"]] = int(reference.get("size") or 0)
    return sum(sizes.values())


def _with_copies(store, message, source, target, copies, renamed):
    references = []
    for reference in message.get("attachments") or []:
        fid = reference.get("id")
        if fid not in renamed and is_valid_id(fid):
            renamed[fid] = _copy_file(store, reference, source, target)
            copies += [renamed[fid]] if renamed[fid] else []
        if renamed.get(fid):
            references.append(renamed[fid])
    return {**message, "attachments": references or None}


def _copy_file(store, reference, source, target):
    """Copy one file to target under a new id; return its new reference, or None when it is gone."""
    found, about = store.read(source.data(reference["id"])), read_json(store, source.about(reference["id"]))[0]
    if found is None or about is None:
        return None
    copy = {**reference, "id": new_id()}
    store.write(target.data(copy["id"]), found[0])
    store.write(target.about(copy["id"]), json.dumps({**about, "id": copy["id"]}, ensure_ascii=False).encode())
    return copy


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


def expand_turn(store, uid, turn, sees_images, shown=None):
    """A turn as the model gets it: the files' text labelled with their names before the message; images as
    image parts (an OpenAI-style content list) for a model that sees them, else a note that it cannot.

    shown, when given, holds the ids of the images sent (turns_before: the newest); the others get a note."""
    references = turn.get("attachments") or []
    if not references:
        return {"role": turn["role"], "content": turn["content"]}
    texts, images = [], []
    for reference in references:
        if not is_valid_id(reference.get("id")):
            continue
        if reference.get("kind") != IMAGE:
            texts.append(model_text(reference["name"], _file_text(store, uid, reference)))
        elif not sees_images:
            texts.append(NO_IMAGES.format(name=reference["name"]))
        elif shown is not None and reference["id"] not in shown:
            texts.append(EARLIER_IMAGE.format(name=reference["name"]))
        else:
            part = _image_part(store, uid, reference)
            images += [part] if part else []
    text = "\n\n".join([*texts, turn["content"]])
    if not images:
        return {"role": turn["role"], "content": text}
    return {"role": turn["role"], "content": [{"type": "text", "text": text}, *images]}


def turns_before(conversations, conversation, mid, vision_models, images=4):
    """The turns the model sees when answering reply mid (Conversation.history_before), each with its files'
    text, and, when the reply's model is one of vision_models, the newest `images` images of the branch (the
    older ones a note: a conversation's every image is not sent again with every reply, nor read)."""
    sees_images = conversation.reply(mid).model in vision_models
    turns = conversation.history_before(mid)
    ids = [ref.get("id") for turn in turns for ref in turn.get("attachments") or [] if ref.get("kind") == IMAGE]
    shown = set(ids[-images:]) if images > 0 else set()
    return [expand_turn(conversations.store, conversations.uid, turn, sees_images, shown) for turn in turns]
