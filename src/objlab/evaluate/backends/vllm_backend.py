"""The vLLM backend: continuous batching with multi-LoRA, used when vllm is installed.

vLLM schedules every request of a call itself (paged KV cache, continuous batching) and serves
each request with its own LoRA (``LoRARequest``), so a call holding prompts for many adapters
decodes them together, like ``hf``'s mixed-adapter batches. It loads its own copy of the base
weights, sized to leave room for the session's transformers model (persona log-probs still
run there). Adapters that add vocabulary (CFT's control tokens, trained through peft's
``trainable_token_indices``) are not supported by vLLM's LoRA loader: ``supports`` says so and
the session decodes those with the ``hf`` backend instead.

Imported only when vllm is importable; objlab never requires it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from objlab.config.evaluation import GenerationSettings
from objlab.lm.generation import Generated, GenerationRequest, Progress
from objlab.lm.adapters import BASE_ADAPTER

GPU_MEMORY_SHARE = 0.5


class VLLMGenerator:
    """Multi-LoRA generation through ``vllm.LLM``; results in input order."""

    name = "vllm"

    def __init__(
        self,
        model_path: str,
        settings: GenerationSettings,
        adapter_path: Callable[[str], Path],
        adds_tokens: Callable[[str], bool],
        max_lora_rank: int,
        dtype: str = "auto",
    ) -> None:
        from vllm import LLM

        self.settings = settings
        self._adapter_path, self._adds_tokens = adapter_path, adds_tokens
        self._lora_ids: dict[str, int] = {}
        self.llm = LLM(
            model=model_path,
            dtype=dtype,
            enable_lora=True,
            max_lora_rank=max_lora_rank,
            max_loras=8,
            gpu_memory_utilization=GPU_MEMORY_SHARE,
            seed=0,
        )

    def supports(self, adapter: str) -> bool:
        return adapter == BASE_ADAPTER or not self._adds_tokens(adapter)

    def _lora_request(self, adapter: str):
        from vllm.lora.request import LoRARequest

        if adapter == BASE_ADAPTER:
            return None
        lora_id = self._lora_ids.setdefault(adapter, len(self._lora_ids) + 1)
        return LoRARequest(adapter, lora_id, str(self._adapter_path(adapter)))

    def generate(self, requests: list[GenerationRequest], progress: Progress | None = None) -> list[Generated]:
        from vllm import SamplingParams

        settings = self.settings
        params = [
            SamplingParams(temperature=settings.temperature, top_p=settings.top_p, max_tokens=request.max_new_tokens, seed=0)
            for request in requests
        ]
        prompts = [{"prompt_token_ids": list(request.prompt_ids)} for request in requests]
        loras = [self._lora_request(request.adapter) for request in requests]
        outputs = self.llm.generate(prompts, params, lora_request=loras, use_tqdm=False)
        if progress is not None:
            progress(len(requests))
        results = []
        for request, output in zip(requests, outputs):
            completion = output.outputs[0]
            finished = completion.finish_reason != "length"
            results.append(Generated(text=completion.text, new_tokens=len(completion.token_ids), finished=finished))
        return results
