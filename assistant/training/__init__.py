"""Adapter training: the QLoRA loop, training data, background jobs and the adapter card."""
