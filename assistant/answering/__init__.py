"""One answer: the modes, the router, what the model is shown (prompts, re-ranking), the
answer check (grounding) and the pipeline that runs them and records the ledger row."""
