"""A batched decoding loop whose rows leave the batch as soon as they finish.

``transformers.generate`` keeps every row of a batch in every forward pass until the *last*
row is done: a row that ended at token 15 is fed padding for the remaining steps of a row
that runs to ``max_new_tokens``. Evaluation batches mix short answers (refusals, a number)
with long ones, so most of that compute is wasted. ``decode_batch`` runs the same greedy or
sampled decoding with a KV cache written in place (``kv_cache``) and, after each step, removes the rows that emitted
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

Sampling several continuations of one prompt (``aware`` draws K per example) forwards the
prompt once and copies its cache (``repeats``); tokens are drawn by inverting the cumulative
distribution with one uniform number per row (``categorical``), not with ``torch.multinomial``,
whose one random number per vocabulary entry cost a fifth of a CPU step at a 152k vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

from objlab.lm.adapters import forward_accepts
from objlab.lm.kv_cache import cache_keyword, decode_cache
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


@dataclass
class _LiveRows:
    """The rows still decoding: the output row each one fills, its adapter, its tokens so far
    (prompt included, for logits processors), its attention mask and its next position."""

    rows: list[int]
    names: list[str] | None
    sequences: torch.Tensor
    mask: torch.Tensor
    positions: torch.Tensor

    def select(self, index: torch.Tensor, cache) -> None:
        """Keep the rows at ``index`` (repeated indices copy a row): the cache and every
        per-row tensor follow, so a removed row costs nothing from the next step on."""
        cache.batch_select_indices(index)
        self.sequences, self.mask, self.positions = self.sequences[index], self.mask[index], self.positions[index]
        picked = index.tolist()
        self.rows = [self.rows[i] for i in picked]
        if self.names is not None:
            self.names = [self.names[i] for i in picked]


def decode_batch(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    eos_ids: Iterable[int],
    *,
    repeats: int = 1,
    adapter_names: Sequence[str] | None = None,
    logits_processor: Sequence[LogitsProcessor] | None = None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    rows_done: Callable[[int], None] | None = None,
) -> list[list[int]]:
    """The new token ids of each row of a left-padded batch, in row order.

    A row ends with its first token in ``eos_ids`` (kept, as ``generate`` keeps it) or after
    ``max_new_tokens`` tokens; unlike ``generate``'s output, rows are not padded to a common
    length. Greedy when ``temperature == 0``; otherwise samples from the distribution scaled
    by ``temperature`` and cut to its ``top_p`` nucleus, drawing from ``generator``.
    ``repeats``: each prompt is decoded that many times (output row ``r * repeats + k`` is
    prompt r's k-th decoding, as if the prompt had been repeated in the batch), but forwarded
    once: its KV cache is copied after the prefill, so K samples of a prompt cost one prefill.
    ``logits_processor``: callables ``(sequences, scores) -> scores`` applied in order before
    the choice (``sequences``: each live row's prompt and new tokens so far).
    ``adapter_names``: one peft adapter per prompt (``"__base__"`` for none); needs a peft model.
    ``rows_done``: called with the number of output rows that ended at each step (their
    end-of-sequence token, or the length limit at the last step), so a caller's progress moves
    while a long batch decodes instead of once when it is over.
    """
    batch = input_ids.shape[0]
    if adapter_names is not None and len(adapter_names) != batch:
        raise ValueError(f"adapter_names has {len(adapter_names)} names for a batch of {batch} rows")
    eos = set(eos_ids)
    new_tokens: list[list[int]] = [[] for _ in range(batch * repeats)]
    if max_new_tokens <= 0 or batch == 0:
        return new_tokens

    positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
    live = _LiveRows(list(range(batch)), list(adapter_names) if adapter_names is not None else None, input_ids, attention_mask, positions)
    step_ids = input_ids  # the prefill; then one token per row
    cache = decode_cache(model, capacity=input_ids.shape[1] + max_new_tokens)
    keep_last = {"logits_to_keep": 1} if forward_accepts(model, "logits_to_keep") else {}
    cache_by = cache_keyword(model)

    hooks = forward_hooks(model, live.names)
    try:
        for step in range(1, max_new_tokens + 1):
            output = model(input_ids=step_ids, attention_mask=live.mask, position_ids=live.positions, use_cache=True, **{cache_by: cache}, **keep_last)
            scores = output.logits[:, -1].to(dtype=torch.float32)
            if step == 1 and repeats > 1:  # the prefill's cache, copied for each decoding of its prompt
                index = torch.arange(batch, device=scores.device).repeat_interleave(repeats)
                live.select(index, cache)
                live.rows, scores = list(range(batch * repeats)), scores[index]
                hooks = _rehooked(model, hooks, live.names)
            for processor in logits_processor or ():
                scores = processor(live.sequences, scores)
            tokens = _choose(scores, temperature, top_p, generator)
            chosen = tokens.tolist()
            for row, token in zip(live.rows, chosen):
                new_tokens[row].append(token)
            going_on = [index for index, token in enumerate(chosen) if token not in eos]
            if rows_done is not None:
                ended = len(chosen) if step == max_new_tokens else len(chosen) - len(going_on)
                if ended:
                    rows_done(ended)
            if step == max_new_tokens or not going_on:
                break
            if len(going_on) < len(chosen):
                keep = torch.tensor(going_on, device=tokens.device)
                live.select(keep, cache)
                tokens = tokens[keep]
                hooks = _rehooked(model, hooks, live.names)

            step_ids = tokens[:, None]
            live.sequences = torch.cat([live.sequences, step_ids], dim=-1)
            live.mask = torch.cat([live.mask, live.mask.new_ones((live.mask.shape[0], 1))], dim=-1)
            live.positions = live.positions[:, -1:] + 1
    finally:
        hooks.close()
    return new_tokens


def _rehooked(model, hooks, names: list[str] | None):
    """peft's per-row adapter hooks for the rows now live (nothing to do without names)."""
    if names is None:
        return hooks
    hooks.close()
    return forward_hooks(model, names)


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
    return categorical(torch.softmax(scores, dim=-1), generator)


def categorical(probabilities: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One draw per row from ``probabilities`` ([rows, vocab]) by inverting the cumulative
    distribution with one uniform number per row. ``torch.multinomial`` draws one exponential
    number per vocabulary entry instead (its argmax(p / q) trick): at a 152k vocabulary that
    is 152k random numbers per row and token, a fifth of a CPU decoding step. The cumulative
    sum is taken in float64 so the tail of a large vocabulary keeps its mass; a token of
    probability 0 is never drawn (searching for the first sum *above* the draw)."""
    cumulative = probabilities.to(torch.float64).cumsum(dim=-1)
    draw = torch.rand(cumulative.shape[0], 1, generator=generator, device=cumulative.device, dtype=torch.float64)
    chosen = torch.searchsorted(cumulative, draw * cumulative[:, -1:], right=True).squeeze(1)
    return chosen.clamp(max=cumulative.shape[1] - 1)


def _top_p_filtered(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """Scores outside the smallest set of tokens holding ``top_p`` of the mass set to -inf
    (transformers' ``TopPLogitsWarper``: the most likely token always stays)."""
    ascending, order = torch.sort(scores, dim=-1)
    below = ascending.softmax(dim=-1).cumsum(dim=-1) <= 1 - top_p
    below[..., -1] = False
    return scores.masked_fill(below.scatter(-1, order, below), float("-inf"))
