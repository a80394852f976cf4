"""Titles and prompts: the parts of a reply that do not need a server."""

import pytest

from chatbot.generation import Settings, build_prompt
from chatbot.titles import clean_title, fallback_title, make_title


@pytest.mark.parametrize(
    "answer, title",
    [
        ('"Exploring the Deep Blue Sea."', "Exploring the Deep Blue Sea"),
        ("Title: Planning a Trip 🌍 to Rome!", "Planning a Trip to Rome"),
        ("<think>hmm, a title</think>\n**Cooking Pasta At Home**", "Cooking Pasta At Home"),
        ("One two three four five six seven eight", "One two three four five six"),
        ("Here's a 5-word descriptive title: Reversing Strings in Python", "Reversing Strings in Python"),
        ("Sure! Here is a title:\n\n'Moon Facts For Curious Minds'", "Moon Facts For Curious Minds"),
        ("", ""),
    ],
)
def test_clean_title(answer, title):
    assert clean_title(answer) == title


def test_fallback_title_is_the_first_words():
    assert fallback_title("please help me write a cover letter for a job") == "please help me write a cover"


@pytest.mark.model
def test_title_from_the_real_model_is_short_and_plain(local_llm):
    title = make_title(
        local_llm,
        None,
        "How do I bake sourdough bread?",
        "Mix flour, water and starter, then let it rise.",
        Settings(seed=0),
    )
    assert title and len(title.split()) <= 6
    assert not title.endswith((".", "!", "?"))


def test_prompt_keeps_the_newest_turns_within_budget():
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"{i}" * 100} for i in range(9)]
    prompt = build_prompt(history, "any", Settings(context_chars=350))
    assert prompt[-1]["content"] == "8" * 100
    assert sum(len(turn["content"]) for turn in prompt) <= 350
    assert prompt[0]["role"] == "user"


def test_prompt_keeps_the_question_even_over_budget():
    prompt = build_prompt([{"role": "user", "content": "x" * 1000}], "any", Settings(context_chars=10))
    assert prompt == [{"role": "user", "content": "x" * 1000}]


def test_system_prompt_is_folded_into_the_first_turn_for_gemma():
    history = [{"role": "user", "content": "hi"}]
    settings = Settings(system_prompt="Be brief.")
    assert build_prompt(history, "google/gemma-2-9b-it", settings) == [{"role": "user", "content": "Be brief.\n\nhi"}]
    assert build_prompt(history, "Qwen/Qwen2.5-7B-Instruct", settings)[0] == {"role": "system", "content": "Be brief."}
