"""A KV cache for ``decode.decode_batch`` that is written in place instead of re-concatenated.

transformers' ``DynamicLayer`` appends a step's keys and values with ``torch.cat``, copying the
whole cache of every layer at every step: for a batch of 64 rows of a small model on CPU that
copy costs as much as the step's matmuls. The decode loop knows how long its rows can get
(prompt width + ``max_new_tokens``), so ``PreallocatedLayer`` allocates that once and writes
each step into it; attention reads a view of the filled part. Rows leaving the batch (or a
prompt's cache copied for K samples) select rows of the buffer, which copies only then.

Only full-attention layers (exactly ``DynamicLayer``) are replaced; a sliding-window or any
other layer type keeps transformers' own behaviour. The layer implements the methods of
transformers' cache-layer interface that the decode loop and attention use (``update``,
``get_seq_length``, ``get_mask_sizes``, ``batch_select_indices``, ``batch_repeat_interleave``),
and is tested against ``DynamicCache`` for equal outputs.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from objlab.lm.adapters import forward_accepts


class PreallocatedLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values live in buffers of ``capacity`` positions;
    ``keys``/``values`` are views of the filled part, as ``DynamicLayer`` exposes them."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.length = 0
        self._key_buffer: torch.Tensor | None = None
        self._value_buffer: torch.Tensor | None = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        rows, heads, _, key_dim = key_states.shape
        self._key_buffer = key_states.new_empty(rows, heads, self.capacity, key_dim)
        self._value_buffer = value_states.new_empty(rows, value_states.shape[1], self.capacity, value_states.shape[-1])
        self.length = 0
        self._expose()
        self.is_initialized = True

    def _expose(self) -> None:
        self.keys = self._key_buffer[:, :, : self.length]
        self.values = self._value_buffer[:, :, : self.length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        stop = self.length + key_states.shape[-2]
        if stop > self.capacity:
            raise ValueError(f"KV cache of {self.capacity} positions cannot hold {stop}")
        self._key_buffer[:, :, self.length : stop] = key_states
        self._value_buffer[:, :, self.length : stop] = value_states
        self.length = stop
        self._expose()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self._key_buffer, self._value_buffer = self._key_buffer[indices], self._value_buffer[indices]
            self._expose()

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self._key_buffer = self._key_buffer.repeat_interleave(repeats, dim=0)
            self._value_buffer = self._value_buffer.repeat_interleave(repeats, dim=0)
            self._expose()

    def reset(self) -> None:
        self.length = 0
        self._key_buffer = self._value_buffer = None
        super().reset()

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("the decode loop never crops its cache")


def decode_cache(model, capacity: int) -> DynamicCache:
    """A ``DynamicCache`` for ``model`` (sliding-window layers where the model has them) whose
    full-attention layers are ``PreallocatedLayer``s of ``capacity`` positions."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "get_text_config"):
        return DynamicCache()
    cache = DynamicCache(config=config.get_text_config(decoder=True))
    cache.layers = [PreallocatedLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


def cache_keyword(module) -> str:
    """The forward argument ``module`` takes a KV cache by: ``cache`` from transformers 5.2x
    (where ``past_key_values`` still works but warns on every call), ``past_key_values`` before."""
    return "cache" if forward_accepts(module, "cache") else "past_key_values"


def returned_cache(output):
    """The KV cache a forward with ``use_cache=True`` returned, under either name."""
    fields = getattr(type(output), "__dataclass_fields__", {})
    return output.cache if "cache" in fields else output.past_key_values
