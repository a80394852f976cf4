"""Titles: the cleaner on answers the local model really gave, and the model itself."""
# ruff: noqa: E501  (the model's answers are kept verbatim, one a line)

import pytest

from chatbot.generation import Settings
from chatbot.titles import TITLE_WORDS, clean_title, fallback_title, make_title

# (the user's first message, what SmolLM2-135M-Instruct answered to the title prompt, the title kept).
# Recorded by running the local model (temperature 0 and 0.7, seeds 0 and 1) on the first exchange of each
# prompt; the answers are kept verbatim, cut-off sentences and all.
REAL_ANSWERS = [
    (
        "Tell me about the moon.",
        "The moon is a breathtaking sight, a terrestrial planet, a breathtaking sight, a breathtaking sight, a breathtaking sight, a",
        "The moon is a breathtaking sight",
    ),
    (
        "Hello",
        "The story of a magical world where dreams and reality blend seamlessly, with a dash of magic and wonder.",
        "The story of a magical world",
    ),
    (
        "Write a Python function that reverses a string.",
        "Here's a 5-word description of the conversation:\n\nThe conversation began with a user asking a question about",
        "Write a Python function that reverses",
    ),
    (
        "What is the capital of France?",
        "L'Étoile, la Cité, la Nation, la Géologie, la Culture, la Tradition,",
        "What is the capital of France?",
    ),
    (
        "Can you help me plan a trip to Japan in spring?",
        "I'm sorry for any misunderstanding, but as a chatbot designed to assist with travel planning, I'm unable to assist",
        "Can you help me plan",
    ),
    (
        "Tell me a joke about cats.",
        "A cat's favorite food is a cat's favorite food, a cat's favorite food is a cat's favorite food,",
        "A cat's favorite food",
    ),
    (
        "How do I make pancakes?",
        "Here's a 5-word description of the conversation:\n\n\"I'm glad to see you're enjoying the",
        "How do I make pancakes?",
    ),
    (
        "Explain quantum computing simply.",
        "Quantum computing is a field of computer science that leverages the principles of quantum mechanics to solve problems that are beyond the capabilities",
        "Quantum computing is a field",
    ),
    (
        "What's the difference between TCP and UDP?",
        "TCP vs UDP: A simple yet complex debate in the world of computer networking.",
        "TCP vs UDP",
    ),
    ("I feel sad today.", "🌱🌱🌱🌱🌱🌱🌱🌱", "I feel sad today."),
    (
        "Summarise the plot of Hamlet.",
        "In a world of shadows, a story of fate and redemption, a tale of fate and redemption, a story of fate",
        "In a world of shadows",
    ),
    (
        "Give me three tips for learning to play the guitar.",
        "The guitar lessons are a journey of self-discovery and growth, with a dash of self-tourism.",
        "The guitar lessons are a journey",
    ),
    (
        "Tell me about the moon.",
        "Moon: A celestial body that orbits the Earth, a breathtaking sight, and a sight to behold.",
        "Moon: A celestial body that orbits",
    ),
    ("Hello", "This conversation is a 5-word description of a 5-word conversation.", "Hello"),
    (
        "Write a Python function that reverses a string.",
        "Here's a 5-word description of the conversation:\n\nThe conversation began with a user asking a question about",
        "Write a Python function that reverses",
    ),
    (
        "What is the capital of France?",
        "Paris: The City of Love, the City of Light, the City of Art, the City of Dreams, the City",
        "Paris: The City of Love",
    ),
    (
        "Can you help me plan a trip to Japan in spring?",
        "I'm excited to help you plan your dream trip to Japan in spring! The weather is perfect for spring festivals and events",
        "Can you help me plan",
    ),
    ("Tell me a joke about cats.", "Mmmmm, a cat.", "Tell me a joke about cats."),
    (
        "How do I make pancakes?",
        "1. Boil your own pancakes:\nIngredients:\n- 2 cups all-purpose flour\n- 2",
        "Boil your own pancakes",
    ),
    (
        "Explain quantum computing simply.",
        "Here's a 5-word description of the conversation:\n\nThe conversation between the two users was a light-",
        "Explain quantum computing simply.",
    ),
    (
        "What's the difference between TCP and UDP?",
        "A: TCP (Transfer Reliable Transport Sockets) and UDP (Uniform Method of Message Management) are the",
        "TCP and UDP",
    ),
    ("I feel sad today.", "Dreadful, I'm sorry to hear about your loss.", "I feel sad today."),
    (
        "Summarise the plot of Hamlet.",
        "In Hamlet's world, the unforgiving fate of fate and the capricious nature of fate are intertwined with the",
        "In Hamlet's world",
    ),
    (
        "Give me three tips for learning to play the guitar.",
        '"The art of guitar playing is a journey of self-discovery, and the right mindset can make all the difference."',
        "The art of guitar playing",
    ),
]


@pytest.mark.parametrize("user_text, answer, title", REAL_ANSWERS)
def test_real_answers_of_the_local_model_become_titles(user_text, answer, title):
    assert (clean_title(answer) or fallback_title(user_text)) == title


@pytest.mark.parametrize(
    "answer, title",
    [
        ("The conversation was a light-hearted and", ""),  # a sentence about the exchange: no title in it
        ("This conversation is about planning a trip to Japan", "Planning a trip to Japan"),
        ("The conversation: Moon landings", "Moon landings"),
        ("Title: Moon facts", "Moon facts"),
        ('Sure! Here\'s a title: "Exploring the Moon"', "Exploring the Moon"),
        ("Certainly. Here is a 5-word title:\n\nBaking Sourdough Bread at Home", "Baking Sourdough Bread at Home"),
        ("I'm sorry, I cannot give a title.", ""),
        ("Paris", ""),  # one word says too little
        ("Cats and", ""),
    ],
)
def test_preambles_are_dropped_and_non_titles_refused(answer, title):
    assert clean_title(answer) == title


def test_the_fallback_does_not_end_on_a_dangling_word():
    assert fallback_title("What's the difference between TCP and UDP?") == "What's the difference between TCP"
    assert fallback_title("Hello there") == "Hello there"


@pytest.mark.model
@pytest.mark.parametrize(
    "user_text", ["Tell me a joke about cats.", "How do I make pancakes?", "Explain quantum computing simply."]
)
def test_the_local_model_gets_a_title_or_the_users_words(local_llm, user_text):
    reply = "".join(local_llm.stream([{"role": "user", "content": user_text}], max_tokens=48, seed=0, temperature=0))
    title = make_title(local_llm, None, user_text, reply, Settings(seed=0))
    if title != fallback_title(user_text):
        assert 2 <= len(title.split()) <= TITLE_WORDS
        assert "conversation" not in title.lower() and not title.startswith("I ")
        assert not title.endswith((".", ",", ":", "!"))


def test_a_generated_title_is_never_longer_than_a_typed_one():
    from chatbot.conversations import MAX_TITLE_CHARS
    from chatbot.generation import Settings
    from chatbot.titles import make_title
    from support import FakeLLM

    title = make_title(FakeLLM(title="Supercalifragilistic" * 20), None, "hello", "hi", Settings())
    assert 0 < len(title) <= MAX_TITLE_CHARS


def test_half_an_emoji_in_the_models_title_is_dropped_and_the_title_can_be_stored():
    # A lone surrogate (an emoji's half, split across chunks) cannot be encoded as JSON: it must not survive.
    title = clean_title("Broken \ud83d pizza words here")
    assert title == "Broken pizza words here"
    title.encode("utf-8")
