"""Configuration: one mapping read from the environment, checked at start-up."""

import os

DEV_SECRET_KEY = "dev-only-secret-change-me"

DEFAULT_HF_MODELS = (
    "google/gemma-2-9b-it",
    "meta-llama/Llama-3.1-8B-Instruct",
    "Qwen/Qwen2.5-7B-Instruct",
    "mistralai/Mistral-7B-Instruct-v0.3",
)


# How replies are generated unless the environment says otherwise (the one place these numbers live).
GENERATION_DEFAULTS = {"TEMPERATURE": 0.5, "TOP_P": 0.7, "MAX_TOKENS": 1024, "CONTEXT_CHARS": 12000}


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def _flag(name, default):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    value = value.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def _number(name, default, kind=int):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {value!r}") from None


def _list(name):
    value = os.environ.get(name, "")
    return [item.strip() for item in value.split(",") if item.strip()]


def from_environment():
    """Return the app's settings read from environment variables."""
    hf_token = os.environ.get("HF_TOKEN") or os.environ.get("HF_KEY") or None
    backend = (os.environ.get("LLM_BACKEND") or ("huggingface" if hf_token else "local")).lower()
    return {
        "SECRET_KEY": os.environ.get("SECRET_KEY") or DEV_SECRET_KEY,
        "STORAGE_URL": os.environ.get("STORAGE_URL") or None,
        "LLM_BACKEND": backend,
        "HF_TOKEN": hf_token,
        "HF_BASE_URL": os.environ.get("HF_BASE_URL") or None,
        "HF_PROVIDER": os.environ.get("HF_PROVIDER") or None,
        "HF_TIMEOUT": _number("HF_TIMEOUT", 60.0, float),
        "LOCAL_MODEL_PATH": os.environ.get("LOCAL_MODEL_PATH") or None,
        "CHATBOT_MODELS": _list("CHATBOT_MODELS"),
        "SYSTEM_PROMPT": os.environ.get("SYSTEM_PROMPT") or None,
        "TEMPERATURE": _number("TEMPERATURE", GENERATION_DEFAULTS["TEMPERATURE"], float),
        "TOP_P": _number("TOP_P", GENERATION_DEFAULTS["TOP_P"], float),
        "MAX_TOKENS": _number("MAX_TOKENS", GENERATION_DEFAULTS["MAX_TOKENS"]),
        "CONTEXT_CHARS": _number("CONTEXT_CHARS", GENERATION_DEFAULTS["CONTEXT_CHARS"]),
        "REDIS_URL": os.environ.get("REDIS_URL") or None,
        "MAX_MESSAGE_CHARS": _number("MAX_MESSAGE_CHARS", 8000),
        "ALLOW_GUESTS": _flag("ALLOW_GUESTS", True),
        "SESSION_COOKIE_SECURE": _flag("SESSION_COOKIE_SECURE", False),
        "LOG_FORMAT": (os.environ.get("LOG_FORMAT") or "").strip().lower() or None,  # None: by debug mode
        "CHECK_MODELS": _flag("CHECK_MODELS", None),  # None: at start-up, except in tests
    }


def validate(app):
    """Refuse to start with settings that would be unsafe or cannot work."""
    config = app.config
    if config["SECRET_KEY"] == DEV_SECRET_KEY and not (app.debug or app.testing):
        raise ConfigError(
            "SECRET_KEY is not set. Set it to a long random string "
            '(python -c "import secrets; print(secrets.token_hex(32))"), '
            "or run with FLASK_DEBUG=1 for local development."
        )
    if config["LLM_BACKEND"] not in ("huggingface", "local"):
        raise ConfigError("LLM_BACKEND must be 'huggingface' or 'local'")
    if config["LLM_BACKEND"] == "huggingface" and not (config["HF_TOKEN"] or config["HF_BASE_URL"]):
        raise ConfigError("LLM_BACKEND=huggingface needs HF_TOKEN (or HF_BASE_URL for a self-hosted server)")
    if config.get("LOG_FORMAT") not in (None, "json", "text"):
        raise ConfigError("LOG_FORMAT must be 'json' or 'text'")
    if config["MAX_MESSAGE_CHARS"] < 1:
        raise ConfigError("MAX_MESSAGE_CHARS must be at least 1")
