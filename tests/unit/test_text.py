"""Text matching shared by the answer check, the evaluation and training data."""

from assistant import text


def test_contains_keeps_numbers_whole():
    assert text.contains("costs £148.50 now", "148.50")
    assert not text.contains("costs £1148.50 now", "148.50")
    assert not text.contains("founded in 2023", "23")
    assert not text.contains("anything", "  ")
    assert text.find("Since 2023 it is 23 pounds", "23") == (17, 19)
    assert text.find("Fee: £148.50", "148.5") is None and text.find("x", " ") is None


def test_common_prefix_counts_shared_leading_items_within_the_limit():
    from assistant.text import common_prefix

    assert common_prefix([[1, 2, 3, 4], [1, 2, 9]]) == 2
    assert common_prefix([[1, 2, 3], [1, 2, 3]]) == 3
    assert common_prefix([[1, 2, 3], [1, 2, 3]], limit=2) == 2  # rerank: one token of its own
    assert common_prefix([["The", "fee", "is"], ["The", "fee", "was"]]) == 2
    assert common_prefix([[5], [6]]) == 0 and common_prefix([]) == 0
