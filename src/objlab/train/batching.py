"""Turning an objective's prepared sequences into padded, role-major (micro-)batches.

An objective only declares its sequences; this module decides how the forward pass runs them.
Sequences of one item that begin with the same tokens -- a preference pair's prompt, and the
first response tokens too when the rejected response starts like the chosen one -- are packed
into one row with that prefix computed once (``lm.packing``), when the caller says the
model's attention takes such a mask (``share_prefixes``). The sequences stay
the batch's rows for the objectives either way, and the packed forward yields the same
log-probs, so no objective knows which layout ran.
"""

from __future__ import annotations

import torch

from objlab.data.chat import ChatEncoder
from objlab.data.records import EncodedPair
from objlab.lm.packing import PaddingSide, pack_rows, padded, shares_prefix, token_ids
from objlab.objectives.base import Batch, ItemSequences, TrainSequence


def encode_sequence(sequence: TrainSequence, encoder: ChatEncoder) -> EncodedPair:
    return sequence.encoded or encoder.encode_pair(sequence.prompt, sequence.response)


def encode_items(items: list[ItemSequences], encoder: ChatEncoder) -> list[list[EncodedPair]]:
    return [[encode_sequence(sequence, encoder) for sequence in entry.sequences] for entry in items]


def step_response_tokens(items: list[ItemSequences], encoded: list[list[EncodedPair]], roles) -> dict[str, int]:
    """Response tokens per role over the whole optimizer step (the objectives' normalisers)."""
    totals = {role: 0 for role in roles}
    for entry, pairs in zip(items, encoded):
        for sequence, pair in zip(entry.sequences, pairs):
            totals[sequence.role] = totals.get(sequence.role, 0) + len(pair.response_ids)
    return totals


def _role_major(items: list[ItemSequences], encoded: list[list[EncodedPair]], roles: tuple[str, ...]):
    """Sequences in role-major order, the rows of each role, and each (item, sequence)'s row."""
    unknown = {s.role for entry in items for s in entry.sequences} - set(roles)
    if unknown:
        raise ValueError(f"sequences with undeclared roles {sorted(unknown)} (declared: {roles})")
    ordered: list[EncodedPair] = []
    rows: dict[str, list[int]] = {role: [] for role in roles}
    row_of: dict[tuple[int, int], int] = {}
    for role in roles:
        for item_index, (entry, pairs) in enumerate(zip(items, encoded)):
            for sequence_index, (sequence, pair) in enumerate(zip(entry.sequences, pairs)):
                if sequence.role == role:
                    rows[role].append(len(ordered))
                    row_of[item_index, sequence_index] = len(ordered)
                    ordered.append(pair)
    return ordered, rows, row_of


def collate(
    items: list[ItemSequences],
    encoded: list[list[EncodedPair]],
    roles: tuple[str, ...],
    pad_id: int,
    step_items: int,
    step_tokens: dict[str, int],
    share_prefixes: bool = True,
    padding_side: PaddingSide = "right",
) -> Batch:
    """Padded batch with rows ordered role-major, items in order within each role; packed
    rows as well when some item's sequences share a prefix and ``share_prefixes``."""
    ordered, rows, row_of = _role_major(items, encoded, roles)
    input_ids, offsets = padded([token_ids(pair) for pair in ordered], pad_id, padding_side)
    attention = torch.zeros_like(input_ids)
    response = torch.zeros(input_ids.shape, dtype=torch.bool)
    for row, (pair, offset) in enumerate(zip(ordered, offsets)):
        attention[row, offset : offset + pair.length] = 1
        response[row, offset + len(pair.prompt_ids) : offset + pair.length] = True
    packed = None
    if share_prefixes and any(shares_prefix(pairs) for pairs in encoded):
        packed = pack_rows(encoded, row_of, pad_id, padding_side)
    return Batch(
        input_ids=input_ids,
        attention_mask=attention,
        response_mask=response,
        rows={role: torch.tensor(indices, dtype=torch.long) for role, indices in rows.items()},
        items=items,
        step_items=step_items,
        step_response_tokens=step_tokens,
        packed=packed,
    )


def micro_batches(
    items: list[ItemSequences],
    encoder: ChatEncoder,
    roles: tuple[str, ...],
    pad_id: int,
    micro_batch_size: int | None,
    share_prefixes: bool = True,
    padding_side: PaddingSide = "right",
) -> list[Batch]:
    """Split a step's items into micro-batches that share the step's normalisers."""
    encoded = encode_items(items, encoder)
    step_tokens = step_response_tokens(items, encoded, roles)
    size = micro_batch_size or len(items)
    return [
        collate(items[start : start + size], encoded[start : start + size], roles, pad_id, len(items), step_tokens, share_prefixes, padding_side)
        for start in range(0, len(items), size)
    ]
