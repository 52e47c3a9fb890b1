"""The decoding rules both token-picking engines share (assistant/models/decoding.py): when an
answer ends, what the stream shows, and the timings."""

from __future__ import annotations

from assistant.models.decoding import Decoding, Request, timings
from assistant.models.sampling import SamplingParams

EOS = 0


class ByteTokenizer:
    """One token per UTF-8 byte; a cut multi-byte character decodes to U+FFFD."""

    def decode(self, ids, skip_special_tokens=True):
        return bytes(i for i in ids if i != EOS).decode("utf-8", errors="replace")


def decoding(max_new_tokens=10, **params):
    request = Request([1, 2, 3], SamplingParams(max_new_tokens=max_new_tokens, **params), None)
    return Decoding(request, ByteTokenizer(), {EOS})


def run(state, tokens):
    """Feed ``tokens`` as an engine does; return the pieces streamed and the result."""
    for token in tokens:
        if state.stopped():
            break
        state.accept(token)
        state.emit()
    state.end()
    return list(state.request.out), state.request.out.result


def test_end_of_sequence_stops_and_the_text_is_streamed_a_piece_per_token():
    pieces, result = run(decoding(), [*b"hi", EOS, *b"never"])
    assert "".join(pieces) == result.text == "hi" and result.finish_reason == "stop"
    assert result.usage.prompt_tokens == 3 and result.usage.completion_tokens == 2


def test_a_multi_byte_character_is_held_back_until_it_is_whole():
    pieces, result = run(decoding(), [*"é!".encode(), EOS])
    assert pieces[:2] == ["é", "!"] and result.text == "é!"


def test_the_length_limit_ends_and_a_cut_character_is_flushed_at_the_end():
    pieces, result = run(decoding(max_new_tokens=2), [*b"a", *"é".encode()])
    assert result.finish_reason == "length" and result.usage.completion_tokens == 2
    assert "".join(pieces) == result.text == "a\ufffd"


def test_a_closed_stream_ends_before_the_next_token_and_end_of_sequence_can_be_ignored():
    state = decoding(ignore_eos=True)
    state.accept(EOS)
    state.request.out.close()
    assert state.stopped() and state.finish == "cancelled"
    state.end()
    result = state.request.out.wait()
    assert result.finish_reason == "cancelled" and result.usage.completion_tokens == 1


def test_timings_follow_the_local_generators_definitions():
    got = timings(started=10.0, first=10.5, ended=12.5, completion_tokens=5)
    assert (got.ttft_ms, got.total_ms, got.tokens_per_s) == (500.0, 2500.0, 2.0)
    assert timings(10.0, None, 10.1, 0).tokens_per_s == 0.0
