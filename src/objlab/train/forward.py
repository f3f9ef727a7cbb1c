"""Forward passes of the policy and of the reference (the same model, adapter disabled)."""

from __future__ import annotations

import torch

from objlab.lm.adapters import causal_lm_of, reference_disabled
from objlab.lm.logits import LogitHead
from objlab.objectives.base import Batch, ForwardOutput


def forward_responses(model, batch: Batch, head: LogitHead, keep_hidden: bool = False) -> ForwardOutput:
    """Log-probs of every response token; only response positions reach the output layer.

    Position t's hidden state predicts token t + 1, so the states before each response token
    are selected, and the output layer sees [response tokens, hidden] instead of
    [rows, length, vocab].
    """
    device = head.weight.device
    input_ids = batch.input_ids.to(device)
    attention = batch.attention_mask.to(device)
    decoder = causal_lm_of(model).get_decoder()
    hidden = decoder(input_ids=input_ids, attention_mask=attention, use_cache=False).last_hidden_state
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


@torch.no_grad()
def forward_reference(model, batch: Batch, head: LogitHead, keep_hidden: bool) -> ForwardOutput:
    """Reference log-probs (and hidden states for KL) with the adapter disabled, no gradient.

    Dropout is irrelevant here: with the adapter disabled no LoRA dropout runs, and the base
    model's own dropout is off (objlab trains with base dropout disabled, see loop.py).
    """
    with reference_disabled(model):
        return forward_responses(model, batch, head, keep_hidden)
