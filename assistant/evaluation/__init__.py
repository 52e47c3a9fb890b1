"""Judging the strategies: the evaluation run over held-out questions, and its report
(tables, plots, break-even)."""
