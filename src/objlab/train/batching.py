"""Turning an objective's prepared sequences into padded, role-major (micro-)batches."""

from __future__ import annotations

import torch

from objlab.data.chat import ChatEncoder
from objlab.data.records import EncodedPair
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


def collate(
    items: list[ItemSequences],
    encoded: list[list[EncodedPair]],
    roles: tuple[str, ...],
    pad_id: int,
    step_items: int,
    step_tokens: dict[str, int],
) -> Batch:
    """Right-padded batch with rows ordered role-major, items in order within each role."""
    ordered: list[tuple[str, EncodedPair]] = []
    rows: dict[str, list[int]] = {role: [] for role in roles}
    for role in roles:
        for entry, pairs in zip(items, encoded):
            for sequence, pair in zip(entry.sequences, pairs):
                if sequence.role == role:
                    rows[role].append(len(ordered))
                    ordered.append((role, pair))
    unknown = {s.role for entry in items for s in entry.sequences} - set(roles)
    if unknown:
        raise ValueError(f"sequences with undeclared roles {sorted(unknown)} (declared: {roles})")
    length = max(pair.length for _, pair in ordered)
    input_ids = torch.full((len(ordered), length), pad_id, dtype=torch.long)
    attention = torch.zeros((len(ordered), length), dtype=torch.long)
    response = torch.zeros((len(ordered), length), dtype=torch.bool)
    for row, (_, pair) in enumerate(ordered):
        ids = pair.prompt_ids + pair.response_ids
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        response[row, len(pair.prompt_ids) : len(ids)] = True
    return Batch(
        input_ids=input_ids,
        attention_mask=attention,
        response_mask=response,
        rows={role: torch.tensor(indices, dtype=torch.long) for role, indices in rows.items()},
        items=items,
        step_items=step_items,
        step_response_tokens=step_tokens,
    )


def micro_batches(
    items: list[ItemSequences],
    encoder: ChatEncoder,
    roles: tuple[str, ...],
    pad_id: int,
    micro_batch_size: int | None,
) -> list[Batch]:
    """Split a step's items into micro-batches that share the step's normalisers."""
    encoded = encode_items(items, encoder)
    step_tokens = step_response_tokens(items, encoded, roles)
    size = micro_batch_size or len(items)
    return [
        collate(items[start : start + size], encoded[start : start + size], roles, pad_id, len(items), step_tokens)
        for start in range(0, len(items), size)
    ]
