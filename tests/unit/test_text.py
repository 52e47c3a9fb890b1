"""Text matching shared by the answer check, the evaluation and training data."""

from assistant import text


def test_contains_keeps_numbers_whole():
    assert text.contains("costs £148.50 now", "148.50")
    assert not text.contains("costs £1148.50 now", "148.50")
    assert not text.contains("founded in 2023", "23")
    assert not text.contains("anything", "  ")
    assert text.find("Since 2023 it is 23 pounds", "23") == (17, 19)
    assert text.find("Fee: £148.50", "148.5") is None and text.find("x", " ") is None
