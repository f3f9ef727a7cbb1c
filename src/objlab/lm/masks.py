"""Attention masks for sequences that share a prefix and travel in one row.

A preference pair is (x, y+) and (x, y-): the prompt, and often the first tokens of both
responses, are the same tokens. Forwarding each sequence in its own row computes that prefix
twice. Packed instead, a row holds the shared prefix once and then each sequence's remaining
tokens as its own *block*; a token attends to an earlier token of the row only when that token
is in the prefix or in its own block, and its position id continues from the prefix as if the
other blocks were not there. A row may also hold several such items one after another (persona
scoring fills rows this way instead of padding them): a token then sees only its own item's
prefix and block, and each item's position ids start again from 0. Every token then sees exactly the keys, values and positions it
would see in a row of its own, so its hidden state is the same up to floating-point summation
order (tested against separate forwards, values and gradients).

The mask is a dense 4D ``[rows, 1, length, length]`` mask, which transformers passes through to
the attention unchanged; only the ``sdpa`` and ``eager`` attention implementations take one,
and a model with sliding-window layers would lose its window under it, so ``supports_block_mask``
says when a model can be given packed rows (otherwise the caller forwards sequences one per row).
"""

from __future__ import annotations

import torch

SHARED = 0  # block id of the prefix every sequence of the row attends to
PADDING = -1  # block id of padding: attends only to itself, is attended by nothing

BLOCK_MASK_IMPLEMENTATIONS = ("sdpa", "eager")


def supports_block_mask(causal_lm) -> bool:
    """Whether ``causal_lm`` computes the same hidden states from a packed row as from separate
    rows: a dense 4D mask reaches its attention as given (``sdpa``/``eager``) and no layer
    restricts attention to a sliding window, which a custom mask would override."""
    config = getattr(causal_lm, "config", None)
    if config is None:
        return False
    config = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    if getattr(config, "_attn_implementation", None) not in BLOCK_MASK_IMPLEMENTATIONS:
        return False
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None:
        return all(kind == "full_attention" for kind in layer_types)
    return not getattr(config, "sliding_window", None) or getattr(config, "use_sliding_window", True) is False


def block_attention_mask(blocks: torch.Tensor, dtype: torch.dtype, implementation: str, cached: int = 0, groups: torch.Tensor | None = None) -> torch.Tensor:
    """The 4D mask of packed rows from their per-token block ids ([rows, length]).

    Token i attends to token j when j <= i (row order) and j is in the shared prefix or in i's
    own block; with ``cached`` positions of a KV cache before the rows (a prefix every row
    continues), every real token also attends to all of those. ``groups`` ([rows, length]): where a
    row holds several items, each token's item; a token then attends only within its item (the
    cached positions stay visible to all). Padding attends only to itself,
    so no softmax row is empty (an empty row would give NaN, which would reach the gradients
    through the masked products). ``sdpa`` takes the boolean mask (True = attend); ``eager``
    adds the mask to the scores, so it gets 0 / the dtype's minimum, as transformers builds its
    own masks.
    """
    length = blocks.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=blocks.device).tril()
    query, key = blocks[:, :, None], blocks[:, None, :]
    visible = (key == SHARED) | (key == query)
    if groups is not None:
        visible &= groups[:, None, :] == groups[:, :, None]
    allowed = causal & visible & (query != PADDING) & (key != PADDING)
    allowed |= torch.eye(length, dtype=torch.bool, device=blocks.device) & (query == PADDING)
    if cached:
        allowed = torch.cat([(query != PADDING).expand(-1, -1, cached), allowed], dim=-1)
    allowed = allowed[:, None]
    if implementation == "sdpa":
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=blocks.device).masked_fill(~allowed, torch.finfo(dtype).min)
