"""Strata: judge prompt engineering + retrieval against LoRA fine-tuning on your own data."""

__version__ = "0.1.0"
