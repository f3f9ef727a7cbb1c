"""Generation backends: batched decoding of many prompts, for one adapter or several at once.

Evaluation dominates a grid's cost, and almost all of it is decoding. Every backend takes a
list of ``GenerationRequest`` (prompt token ids, the adapter to decode with, a token limit)
and returns one ``Generated`` per request, in input order. A request names its adapter, so
one call can hold prompts for several adapters: peft routes each row through its own LoRA
weights (``adapter_names``; ``"__base__"`` for the base model), which amortises the base
weights over a whole group of grid cells. Outputs equal those of decoding each adapter alone.

- ``hf``: ``decode.decode_batch``, left padding, prompts sorted by length so a batch wastes
  little on padding; greedy unless a temperature is configured. Rows leave the batch at their
  end-of-sequence token, so short answers stop costing compute (``generate`` would keep them
  until the batch's longest answer ends); greedy outputs equal ``generate``'s. The CPU path.
- ``hf-static``: ``transformers.generate`` with a static KV cache
  (``cache_implementation="static"``); on a GPU transformers compiles the decoding step, once
  per shape it sees, and a compilation costs more than decoding a batch. So the shapes are
  bounded: prompt widths are padded to buckets of 64 tokens (transformers keeps the cache at
  the longest length seen, and batches run longest prompts first), and a batch runs with a
  power-of-two number of rows, a partial batch filled with copies of its last request whose
  outputs are dropped (``static_rows``). ``warm_up`` runs one batch of each shape a request
  set will use, so a timed run (or the first real batch) compiles nothing.
- ``vllm``: see ``vllm_backend``; optional, never required.

Every backend masks the tokens that were added to the vocabulary (CFT's control tokens), so
no adapter can emit them and the base model's outputs do not depend on which adapters were
loaded before it.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from objlab.config.evaluation import GenerationSettings
from objlab.errors import ConfigError
from objlab.lm.adapters import BASE_ADAPTER, routed
from objlab.lm.decode import decode_batch, eos_token_ids, left_padded

CPU_BATCH_SIZE = 64  # CPU decoding gains throughput up to about here (benchmarks/generation.py)
MAX_AUTO_BATCH = 256
STATIC_WIDTH_BUCKET = 64

Progress = Callable[[int], None]


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to decode: its rendered token ids and the adapter to decode it with."""

    prompt_ids: tuple[int, ...]
    adapter: str = BASE_ADAPTER
    max_new_tokens: int = 256


@dataclass(frozen=True)
class Generated:
    """The decoded answer; ``finished`` is false when it was cut at ``max_new_tokens``."""

    text: str
    new_tokens: int
    finished: bool


class VocabLimit:
    """Logits processor that forbids every token id at or above ``limit`` (added tokens)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores[:, self.limit :] = -math.inf
        return scores


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def choose_backend(setting: str, device: torch.device) -> str:
    """The backend to use: as configured, or for ``auto`` vllm -> hf-static on GPU -> hf on CPU."""
    if setting == "vllm" and not vllm_available():
        raise ConfigError("eval.generation.backend: 'vllm' is configured but vllm is not installed (pip install objlab[vllm])")
    if setting != "auto":
        return setting
    if device.type == "cuda":
        return "vllm" if vllm_available() else "hf-static"
    return "hf"


def auto_batch_size(model, device: torch.device, width: int, max_new_tokens: int) -> int:
    """A batch that fits: a constant on CPU; on GPU, half the free memory over each sequence's
    KV cache and last-position logits (the two costs that grow with the batch)."""
    if device.type != "cuda":
        return CPU_BATCH_SIZE
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    heads = getattr(config, "num_attention_heads", 1)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    element = next(model.parameters()).element_size()
    kv_bytes = 2 * config.num_hidden_layers * kv_heads * head_dim * element * (width + max_new_tokens)
    logits_bytes = 4 * config.vocab_size * 2
    free, _ = torch.cuda.mem_get_info(device)
    return max(1, min(MAX_AUTO_BATCH, int(free * 0.5) // (kv_bytes + logits_bytes)))


def static_rows(count: int, limit: int) -> int:
    """Rows a static-cache batch of ``count`` requests runs with: the next power of two, at most
    ``limit`` (a configured batch size): the compiled decoding step then sees at most
    log2(limit) + 2 batch shapes however the requests split into batches."""
    return min(1 << (count - 1).bit_length(), limit)


def power_of_two_below(size: int) -> int:
    return 1 << (size.bit_length() - 1)


def length_sorted_batches(requests: list[GenerationRequest], size_of: Callable[[list[GenerationRequest]], int]) -> list[list[int]]:
    """Request indices in batches of equal ``max_new_tokens``, longest prompts first."""
    order = sorted(range(len(requests)), key=lambda index: (requests[index].max_new_tokens, -len(requests[index].prompt_ids), index))
    batches, start = [], 0
    while start < len(order):
        limit = requests[order[start]].max_new_tokens
        size = max(1, size_of([requests[order[start]]]))
        batch = [index for index in order[start : start + size] if requests[index].max_new_tokens == limit]
        batches.append(batch)
        start += len(batch)
    return batches


class HFGenerator:
    """Batched decoding over a (peft) model: ``decode_batch``, or ``generate`` with a static
    cache for ``hf-static``; see the module docstring. Sampling draws from a generator seeded
    with 0 per instance (the ``hf`` path), so a call's samples are reproducible."""

    def __init__(self, model, tokenizer, settings: GenerationSettings, vocab_limit: int, device: torch.device, static: bool = False) -> None:
        self.model, self.tokenizer, self.settings, self.device = model, tokenizer, settings, device
        self.static = static
        self.name = "hf-static" if static else "hf"
        self.vocab_limit = vocab_limit
        self.eos_ids = eos_token_ids(model, tokenizer)
        self._sampler = torch.Generator(device=device).manual_seed(0) if settings.temperature > 0 else None

    def supports(self, adapter: str) -> bool:
        return True

    def _batch_size(self, requests: list[GenerationRequest]) -> int:
        """The configured batch size, or one that fits (``auto``; for the static cache the
        power of two below it, so full batches are a bucket shape too)."""
        if self.settings.batch_size != "auto":
            return self.settings.batch_size
        size = auto_batch_size(self.model, self.device, len(requests[0].prompt_ids), requests[0].max_new_tokens)
        return power_of_two_below(size) if self.static else size

    def _static_rows(self, count: int) -> int:
        """Rows the static path runs a batch of ``count`` requests with: the next power of two,
        never above a configured batch size (``auto`` batches are powers of two already)."""
        limit = self.settings.batch_size if self.settings.batch_size != "auto" else MAX_AUTO_BATCH
        return static_rows(count, max(count, limit))

    def _shape(self, batch: list[GenerationRequest]) -> tuple[int, int, int]:
        """(rows, prompt width, new tokens) of ``batch`` as ``generate`` receives it."""
        rows = self._static_rows(len(batch)) if self.static else len(batch)
        return rows, self._width(batch), batch[0].max_new_tokens

    def static_shapes(self, requests: list[GenerationRequest]) -> list[tuple[int, int, int]]:
        """The distinct (rows, prompt width, new tokens) shapes the batches of ``requests`` run
        with, in the order ``generate`` first meets them."""
        batches = length_sorted_batches(requests, self._batch_size)
        return list(dict.fromkeys(self._shape([requests[index] for index in batch]) for batch in batches))

    def warm_up(self, requests: list[GenerationRequest]) -> int:
        """Decode one batch of each shape ``requests`` will run with, outputs dropped (static
        path: each compiles once here; ``hf``: only the first batch, nothing compiles there);
        returns how many batches ran."""
        seen: set[tuple[int, int, int]] = set()
        for batch in length_sorted_batches(requests, self._batch_size):
            chosen = [requests[index] for index in batch]
            if (shape := self._shape(chosen)) not in seen and (self.static or not seen):
                seen.add(shape)
                self._generate_batch(chosen)
        return len(seen)

    def generate(self, requests: list[GenerationRequest], progress: Progress | None = None) -> list[Generated]:
        """Decode every request; results in input order."""
        results: list[Generated | None] = [None] * len(requests)
        for batch in length_sorted_batches(requests, self._batch_size):
            reported = [0]

            def rows_done(count: int, reported: list[int] = reported, size: int = len(batch)) -> None:
                count = min(count, size - reported[0])  # a batch retried after running out of memory reports once
                reported[0] += count
                if progress is not None and count:
                    progress(count)

            for index, generated in zip(batch, self._generate_with_backoff([requests[i] for i in batch], rows_done)):
                results[index] = generated
            if progress is not None and reported[0] < len(batch):  # the static path reports its batch at once
                progress(len(batch) - reported[0])
        return results  # type: ignore[return-value]

    def _generate_with_backoff(self, batch: list[GenerationRequest], rows_done=None) -> list[Generated]:
        """One batch; on a CUDA out-of-memory error with an automatic batch size, halves."""
        try:
            return self._generate_batch(batch, rows_done)
        except torch.cuda.OutOfMemoryError:
            if self.settings.batch_size != "auto" or len(batch) == 1:
                raise
            torch.cuda.empty_cache()
            half = len(batch) // 2
            return self._generate_with_backoff(batch[:half], rows_done) + self._generate_with_backoff(batch[half:], rows_done)

    def _width(self, batch: list[GenerationRequest]) -> int:
        """The padded prompt width: the longest prompt, rounded up to the bucket for ``hf-static``."""
        width = max(len(request.prompt_ids) for request in batch)
        return -(-width // STATIC_WIDTH_BUCKET) * STATIC_WIDTH_BUCKET if self.static else width

    def _padded(self, batch: list[GenerationRequest]) -> tuple[torch.Tensor, torch.Tensor]:
        return left_padded([request.prompt_ids for request in batch], self.tokenizer.pad_token_id, self.device, self._width(batch))

    def _logits_processors(self) -> list[VocabLimit]:
        """Added tokens masked when the output layer has rows for them."""
        if self.vocab_limit < self.model.get_output_embeddings().weight.shape[0]:
            return [VocabLimit(self.vocab_limit)]
        return []

    def _static_generate_kwargs(self, batch: list[GenerationRequest], adapters: list[str] | None) -> dict:
        settings = self.settings
        kwargs = {"max_new_tokens": batch[0].max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id, "cache_implementation": "static"}
        if settings.temperature > 0:
            kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=0)
        else:
            kwargs["do_sample"] = False
        if processors := self._logits_processors():
            kwargs["logits_processor"] = processors
        if adapters is not None:
            kwargs["adapter_names"] = adapters
        return kwargs

    @torch.no_grad()
    def _generate_batch(self, batch: list[GenerationRequest], rows_done=None) -> list[Generated]:
        real = len(batch)
        if self.static:  # fill to a bucket of rows; the copies' outputs are dropped below
            batch = batch + [batch[-1]] * (self._static_rows(real) - real)
        input_ids, attention = self._padded(batch)
        max_new_tokens = batch[0].max_new_tokens
        self.model.eval()
        with routed(self.model, [request.adapter for request in batch]) as adapters:
            if self.static:
                output = self.model.generate(input_ids=input_ids, attention_mask=attention, **self._static_generate_kwargs(batch, adapters))
                rows = [row.tolist() for row in output[:, input_ids.shape[1] :]]
            else:
                rows = decode_batch(
                    self.model,
                    input_ids,
                    attention,
                    max_new_tokens,
                    self.eos_ids,
                    adapter_names=adapters,
                    logits_processor=self._logits_processors(),
                    temperature=self.settings.temperature,
                    top_p=self.settings.top_p,
                    generator=self._sampler,
                    rows_done=rows_done,
                )
        return [self._decode(row, max_new_tokens) for row in rows[:real]]

    def _decode(self, new_ids: list[int], max_new_tokens: int) -> Generated:
        stop = next((position for position, token in enumerate(new_ids) if token in self.eos_ids), None)
        kept = new_ids if stop is None else new_ids[:stop]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        finished = stop is not None or len(kept) < max_new_tokens
        return Generated(text=text, new_tokens=len(kept), finished=finished)
