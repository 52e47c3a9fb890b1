"""The web chat's history as the pipeline reads it."""

from assistant.ui.chat import chat_turns
from assistant.ui.common import FOOTER_START


def test_chat_turns_keep_questions_and_answers_without_footers_sources_or_failures():
    history = [
        {"role": "user", "content": "What is the new connection fee?"},
        {"role": "assistant", "content": "It is 148.50 pounds." + FOOTER_START + "route</small>"},
        {"role": "assistant", "content": "**[1] fees.md**", "metadata": {"title": "Sources"}},
        {"role": "user", "content": "And the meter?"},
        {"role": "assistant", "content": "\n\n**Could not answer:** the model failed"},
        {"role": "user", "content": "How long does it take?"},
    ]
    assert chat_turns(history) == [
        {"role": "user", "content": "What is the new connection fee?"},
        {"role": "assistant", "content": "It is 148.50 pounds."},
        {"role": "user", "content": "And the meter?"},
        {"role": "user", "content": "How long does it take?"},
    ]
    assert chat_turns(None) == []
