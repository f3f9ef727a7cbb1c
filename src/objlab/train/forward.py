"""Forward passes of the policy and of the reference (the same model, adapter disabled).

A batch runs either as one row per sequence (2D padding mask) or, when ``train.batching``
packed sequences that share a prefix, as one row per item under a block mask (``lm.packing``).
Either way the output is the same: log-probs of every sequence's response tokens, in sequence
order, so objectives do not know which layout ran.
"""

from __future__ import annotations

import torch

from objlab.lm.adapters import causal_lm_of, reference_disabled
from objlab.lm.logits import LogitHead
from objlab.lm.packing import packed_hidden
from objlab.objectives.base import Batch, ForwardOutput


def forward_responses(model, batch: Batch, head: LogitHead, keep_hidden: bool = False) -> ForwardOutput:
    """Log-probs of every response token; only response positions reach the output layer.

    Position t's hidden state predicts token t + 1, so the states before each response token
    are selected, and the output layer sees [response tokens, hidden] instead of
    [rows, length, vocab]. Position ids come from the mask, so left and right padding give the
    same result.
    """
    if batch.packed is not None:
        return _forward_packed(model, batch, head, keep_hidden)
    device = head.weight.device
    input_ids = batch.input_ids.to(device)
    attention = batch.attention_mask.to(device)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    decoder = causal_lm_of(model).get_decoder()
    hidden = decoder(input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=False).last_hidden_state
    predicts = batch.response_mask[:, 1:].to(device)  # token t+1 is a response token
    selected = hidden[:, :-1][predicts]
    targets = input_ids[:, 1:][predicts]
    rows = torch.arange(input_ids.shape[0], device=device)[:, None].expand_as(predicts)[predicts]
    return ForwardOutput(
        token_logps=head.token_logps(selected, targets),
        token_rows=rows,
        n_rows=input_ids.shape[0],
        hidden=selected if keep_hidden else None,
        head=head,
    )


def _forward_packed(model, batch: Batch, head: LogitHead, keep_hidden: bool) -> ForwardOutput:
    """The packed layout: one decoder pass over the items' rows, the output layer once per
    distinct (position, target), then every sequence's tokens gathered from those."""
    packed = batch.packed
    device = head.weight.device
    sources = packed_hidden(causal_lm_of(model), packed, device)
    slots = packed.token_slots.to(device)
    return ForwardOutput(
        token_logps=head.token_logps(sources, packed.head_targets.to(device))[slots],
        token_rows=packed.token_sequences.to(device),
        n_rows=batch.input_ids.shape[0],
        hidden=sources[slots] if keep_hidden else None,
        head=head,
    )


@torch.no_grad()
def forward_reference(model, batch: Batch, head: LogitHead, keep_hidden: bool) -> ForwardOutput:
    """Reference log-probs (and hidden states for KL) with the adapter disabled, no gradient.

    Dropout is irrelevant here: with the adapter disabled no LoRA dropout runs, and the base
    model's own dropout is off (objlab trains with base dropout disabled, see loop.py).
    """
    with reference_disabled(model):
        return forward_responses(model, batch, head, keep_hidden)
