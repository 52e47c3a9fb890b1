"""Generation backends behind one interface: the local model (transformers + PEFT in this
process) or any OpenAI-compatible server (vLLM, LoRAX, llama.cpp, a hosted API)."""
