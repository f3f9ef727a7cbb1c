"""A batched decoding loop whose rows leave the batch as soon as they finish (issue 8).

``transformers.generate`` keeps every row of a batch in every forward pass until the *last*
row is done: a row that ended at token 15 is fed padding for the remaining steps of a row
that runs to ``max_new_tokens``. Evaluation batches mix short answers (refusals, a number)
with long ones, so most of that compute is wasted. ``decode_batch`` runs the same greedy or
sampled decoding with a ``DynamicCache`` and, after each step, removes the rows that emitted
an end-of-sequence token from the cache, the attention mask, the position ids and the
per-row adapter names; the next forward pass runs on the survivors only. It does not refill
the freed slots: the batch simply shrinks.

Greedy outputs equal ``generate(do_sample=False)``'s token for token: the prompt is
left-padded, position ids come from the attention mask (``cumsum - 1``, 0 on padding) and
then advance by one per step, and only the last position's logits are computed
(``logits_to_keep=1``) -- all as ``generate`` does. Removing a row changes nothing for the
others: every row attends only to its own cache entries. Unlike ``generate``, nothing is read
from the model's ``generation_config``: the stop ids are ``eos_ids`` and the only logits
processors are those passed in (a configured ``repetition_penalty``, say, is not applied).

For a peft model with several adapters, ``adapter_names`` routes each row through its own
LoRA weights. peft does this with forward hooks that it registers on every LoRA module per
call (``_enable_peft_forward_hooks``), walking the whole module tree each time; the hooks are
therefore installed once per batch composition -- at the start and after each removal of
rows -- rather than once per token, exactly as ``PeftModel.generate`` installs them once for
the whole call.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence

import torch

from objlab.lm.peft_compat import forward_hooks

LogitsProcessor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def left_padded(sequences: Sequence[Sequence[int]], pad: int, device=None, width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) of token sequences padded on the left to ``width`` (default: the
    longest), the layout ``decode_batch`` and every batched prompt forward expect."""
    width = max(map(len, sequences)) if width is None else width
    ids = [[pad] * (width - len(sequence)) + list(sequence) for sequence in sequences]
    mask = [[0] * (width - len(sequence)) + [1] * len(sequence) for sequence in sequences]
    return torch.tensor(ids, device=device), torch.tensor(mask, device=device)


def decode_batch(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    eos_ids: Iterable[int],
    *,
    adapter_names: Sequence[str] | None = None,
    logits_processor: Sequence[LogitsProcessor] | None = None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """The new token ids of each row of a left-padded batch, in row order.

    A row ends with its first token in ``eos_ids`` (kept, as ``generate`` keeps it) or after
    ``max_new_tokens`` tokens; unlike ``generate``'s output, rows are not padded to a common
    length. Greedy when ``temperature == 0``; otherwise samples from the distribution scaled
    by ``temperature`` and cut to its ``top_p`` nucleus, drawing from ``generator``.
    ``logits_processor``: callables ``(sequences, scores) -> scores`` applied in order before
    the choice (``sequences``: each live row's prompt and new tokens so far).
    ``adapter_names``: one peft adapter per row (``"__base__"`` for none); needs a peft model.
    """
    batch = input_ids.shape[0]
    if adapter_names is not None and len(adapter_names) != batch:
        raise ValueError(f"adapter_names has {len(adapter_names)} names for a batch of {batch} rows")
    eos = set(eos_ids)
    new_tokens: list[list[int]] = [[] for _ in range(batch)]
    if max_new_tokens <= 0 or batch == 0:
        return new_tokens

    rows = list(range(batch))  # the input row of each live row
    names = list(adapter_names) if adapter_names is not None else None
    sequences, mask = input_ids, attention_mask
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    step_ids = input_ids  # the prefill; then one token per row
    cache = _dynamic_cache(model)
    keep_last = {"logits_to_keep": 1} if _accepts(model, "logits_to_keep") else {}

    hooks = forward_hooks(model, names)
    try:
        for step in range(1, max_new_tokens + 1):
            output = model(input_ids=step_ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True, **keep_last)
            scores = output.logits[:, -1].to(dtype=torch.float32)
            for processor in logits_processor or ():
                scores = processor(sequences, scores)
            tokens = _choose(scores, temperature, top_p, generator)
            chosen = tokens.tolist()
            for row, token in zip(rows, chosen):
                new_tokens[row].append(token)
            if step == max_new_tokens:
                break

            live = [index for index, token in enumerate(chosen) if token not in eos]
            if not live:
                break
            if len(live) < len(rows):
                keep = torch.tensor(live, device=tokens.device)
                cache.batch_select_indices(keep)
                sequences, mask, positions, tokens = sequences[keep], mask[keep], positions[keep], tokens[keep]
                rows = [rows[index] for index in live]
                if names is not None:
                    names = [names[index] for index in live]
                    hooks.close()
                    hooks = forward_hooks(model, names)

            step_ids = tokens[:, None]
            sequences = torch.cat([sequences, step_ids], dim=-1)
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
            positions = positions[:, -1:] + 1
    finally:
        hooks.close()
    return new_tokens


def eos_token_ids(model, tokenizer) -> set[int]:
    """Every id that ends a turn: the generation config's (Llama 3 lists several) and the tokenizer's."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _choose(scores: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Each row's next token: the argmax, or a draw from the tempered top-p distribution."""
    if temperature == 0:
        return scores.argmax(dim=-1)
    scores = scores / temperature
    if top_p < 1.0:
        scores = _top_p_filtered(scores, top_p)
    probabilities = torch.softmax(scores, dim=-1)
    return torch.multinomial(probabilities, num_samples=1, generator=generator).squeeze(1)


def _top_p_filtered(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """Scores outside the smallest set of tokens holding ``top_p`` of the mass set to -inf
    (transformers' ``TopPLogitsWarper``: the most likely token always stays)."""
    ascending, order = torch.sort(scores, dim=-1)
    below = ascending.softmax(dim=-1).cumsum(dim=-1) <= 1 - top_p
    below[..., -1] = False
    return scores.masked_fill(below.scatter(-1, order, below), float("-inf"))


def _dynamic_cache(model):
    from transformers import DynamicCache

    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        return DynamicCache(config=config.get_text_config(decoder=True))  # sliding-window layers where the model has them
    return DynamicCache()


def _accepts(model, argument: str) -> bool:
    """Whether the underlying transformers model's forward takes ``argument`` (peft's takes **kwargs)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return argument in inspect.signature(inner.forward).parameters
