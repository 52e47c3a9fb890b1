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


def test_chat_turns_read_the_parts_gradio_hands_handlers():
    """Gradio gives a handler each message's content as a list of parts, not a string."""
    history = [
        {"role": "user", "content": [{"type": "text", "text": "What is the fee?"}],
         "metadata": None, "options": None},
        {"role": "assistant", "content": [{"type": "text", "text": "148.50." + FOOTER_START}],
         "metadata": None},
        {"role": "assistant", "content": [{"type": "file", "file": {"path": "x.png"}}]},
        {"role": "assistant", "content": ""},  # an answer stopped before its first word
    ]
    assert chat_turns(history) == [{"role": "user", "content": "What is the fee?"},
                                   {"role": "assistant", "content": "148.50."}]


def test_an_answer_stopped_before_its_first_word_says_so_and_is_not_history():
    from assistant.ui.chat import STOPPED, stopped

    history, note = stopped([{"role": "user", "content": "Hi?"},
                             {"role": "assistant", "content": [{"type": "text", "text": ""}]}])
    assert note == STOPPED and "stopped" in history[-1]["content"]
    assert chat_turns(history) == [{"role": "user", "content": "Hi?"}]
    kept, _ = stopped([{"role": "assistant", "content": "Half an ans"}])
    assert kept[-1]["content"] == "Half an ans"
