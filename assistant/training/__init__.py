"""Adapter training: the LoRA loop, training data, background jobs and the adapter card."""
