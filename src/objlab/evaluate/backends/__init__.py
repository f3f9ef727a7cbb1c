"""Decoding backends: batched Hugging Face decoding (dynamic or static cache) and the optional vLLM backend."""
