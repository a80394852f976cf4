"""A reply's model call: its settings, the prompt made of the conversation, and the thread that streams the
model's pieces (whole characters) to the reply's job."""

import queue
import re
import threading
from dataclasses import dataclass

from .config import GENERATION_DEFAULTS
from .llm import LLMError

_SURROGATE = re.compile("[\ud800-\udfff]")

# What an image sent to the model counts toward CONTEXT_CHARS, a budget of text (about 4 characters a token).
# What an image really costs a model varies: 256 tokens (Gemma 3), 576 (LLaVA 1.5), about 1,600 (Claude) and
# 3,136 (Qwen2.5-VL) for one 1,568 pixels square. 2,000 characters (500 tokens) makes images weigh in the
# trimming, so that old ones are dropped with their turns, while a message's 4 images (8,000), a question and
# a reply still fit the default 12,000: a follow-up question keeps the images it is about. A larger model
# window is used by raising CONTEXT_CHARS. What bounds a request is the cap on its images (turns_before).
IMAGE_CHARS = 2000


@dataclass
class Settings:
    """What shapes a model call, from the app's configuration."""

    temperature: float = GENERATION_DEFAULTS["TEMPERATURE"]
    top_p: float = GENERATION_DEFAULTS["TOP_P"]
    max_tokens: int = GENERATION_DEFAULTS["MAX_TOKENS"]
    context_chars: int = GENERATION_DEFAULTS["CONTEXT_CHARS"]
    system_prompt: str | None = None
    seed: int | None = None
    vision_models: tuple = ()  # the models sent images (VISION_MODELS); others get a note instead
    images: int = 4  # the newest images of a conversation sent with a reply (ATTACHMENT_MESSAGE_FILES)

    @classmethod
    def from_config(cls, config):
        """Read the settings from a Flask config mapping."""
        return cls(
            temperature=config["TEMPERATURE"],
            top_p=config["TOP_P"],
            max_tokens=config["MAX_TOKENS"],
            context_chars=config["CONTEXT_CHARS"],
            system_prompt=config["SYSTEM_PROMPT"],
            seed=config.get("LLM_SEED"),
            vision_models=tuple(config["VISION_MODELS"]),
            images=config["ATTACHMENT_MESSAGE_FILES"],
        )

    def params(self):
        """Keyword arguments for LLM.stream()."""
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens, "seed": self.seed}


def system_prompt(settings, instructions=None):
    """The system prompt of a reply: the site's SYSTEM_PROMPT first, then the conversation's own
    instructions, a blank line between; None when there is neither."""
    parts = [part for part in (settings.system_prompt, instructions) if part]
    return "\n\n".join(parts) or None


def build_prompt(history, model, settings, instructions=None):
    """The messages sent to the model: the newest turns that fit the budget, and the system prompt.

    history is the path from the conversation's root to the reply (the branch shown, not the others).
    The oldest turns are dropped first; the last (the question) is always kept.
    The system prompt is the site's and the conversation's instructions (system_prompt()).
    Some models (Gemma) refuse a system role, so for them the system prompt
    is folded into the first user turn.
    """
    kept, used = [], 0
    for turn in reversed(history):
        used += turn_chars(turn)
        if kept and used > settings.context_chars:
            break
        kept.append(dict(turn))
    kept.reverse()
    while kept and kept[0]["role"] != "user":  # a chat template wants the user first
        kept.pop(0)
    kept = alternating(kept)
    system = system_prompt(settings, instructions)
    if system:
        if "gemma" in (model or "").lower():
            _prefix_text(kept[0], f"{system}\n\n")
        else:
            kept.insert(0, {"role": "system", "content": system})
    return kept


def alternating(turns):
    """The turns with two of one role in a row merged into one, so that the roles alternate, as many models' chat
    templates require (Gemma's, Mistral's raise an error otherwise).

    Two user turns meet when the reply between them failed or was empty (it is not sent), or in a copy or a fork
    whose empty reply was not copied. Merged, the model reads both, as written, in order."""
    merged = []
    for turn in turns:
        if merged and merged[-1]["role"] == turn["role"]:
            merged[-1] = {**merged[-1], "content": _joined(merged[-1]["content"], turn["content"])}
        else:
            merged.append(turn)
    return merged


def _joined(first, second):
    if isinstance(first, str) and isinstance(second, str):
        return f"{first}\n\n{second}"
    return [*_parts(first), *_parts(second)]  # text and images: the first part stays a text (_prefix_text)


def _parts(content):
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def turn_chars(turn):
    """What a turn counts toward CONTEXT_CHARS: its text (with its files' text), and IMAGE_CHARS an image."""
    content = turn["content"]
    if isinstance(content, str):
        return len(content)
    return sum(len(part.get("text") or "") if part.get("type") == "text" else IMAGE_CHARS for part in content)


def _prefix_text(turn, prefix):
    content = turn["content"]
    if isinstance(content, str):
        turn["content"] = prefix + content
    else:  # a content list (text and images): the text part is first
        turn["content"] = [{**content[0], "text": prefix + content[0]["text"]}, *content[1:]]


def start_model(llm, messages, model, settings):
    """Ask the model in a thread of its own; return (pieces, cancel): a queue that gets each piece, then None
    or the LLMError raised, and an Event that makes the thread abandon the model call at its next piece."""
    pieces, cancel = queue.Queue(), threading.Event()
    threading.Thread(
        target=_produce, args=(llm, messages, model, settings.params(), pieces, cancel), daemon=True
    ).start()
    return pieces, cancel


def _whole_characters(text):
    """(text, a high surrogate held back): no piece the job takes carries half a character.

    A model may send an emoji as a surrogate pair split across two chunks (a JSON stream escaping
    "\\ud83d" in one and "\\ude00" in the next). A trailing high surrogate waits for the next piece;
    the pair is joined, and any surrogate still alone becomes U+FFFD, which can be encoded.
    """
    held = ""
    if text and "\ud800" <= text[-1] <= "\udbff":
        text, held = text[:-1], text[-1]
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text, held


def _produce(llm, messages, model, params, pieces, cancel):
    """Run in a thread: put each piece on the queue, then None, or the LLMError raised."""
    stream = llm.stream(messages, model, **params)
    held = ""  # half a character, whose other half is in the next piece
    try:
        for piece in stream:
            if cancel.is_set():
                break
            piece, held = _whole_characters(held + piece)
            pieces.put(piece)
        if held:
            pieces.put("\ufffd")  # a character whose second half never came
        pieces.put(None)
    except LLMError as error:
        pieces.put(error)
    except Exception as error:  # an unexpected failure must still end the reply, and be logged
        pieces.put(LLMError(repr(error)))
        raise
    finally:
        stream.close()  # abandons the model call (closes the HTTP stream / stops llama.cpp)
