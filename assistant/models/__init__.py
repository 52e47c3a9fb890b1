"""Base models, generation and LoRA adapters (heavy imports happen inside functions)."""
