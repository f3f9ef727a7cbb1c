"""Turning an objective's prepared sequences into padded, role-major (micro-)batches.

An objective only declares its sequences; this module decides how the forward pass runs them.
Sequences of one item that begin with the same tokens -- a preference pair's prompt, and the
first response tokens too when the rejected response starts like the chosen one -- are packed
into one row with that prefix computed once (``PackedRows``, masks in ``lm.masks``), when the
caller says the model's attention takes such a mask (``share_prefixes``). The sequences stay
the batch's rows for the objectives either way, and the packed forward yields the same
log-probs, so no objective knows which layout ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from objlab.data.chat import ChatEncoder
from objlab.data.records import EncodedPair
from objlab.lm.masks import PADDING, SHARED
from objlab.objectives.base import Batch, ItemSequences, PackedRows, TrainSequence

PaddingSide = Literal["right", "left"]


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


def token_ids(pair: EncodedPair) -> tuple[int, ...]:
    return pair.prompt_ids + pair.response_ids


def common_prefix(sequences: list[tuple[int, ...]]) -> int:
    """How many leading tokens all ``sequences`` share (a lone sequence shares all of itself)."""
    shortest = min(map(len, sequences))
    for position in range(shortest):
        token = sequences[0][position]
        if any(sequence[position] != token for sequence in sequences[1:]):
            return position
    return shortest


def shares_prefix(pairs: list[EncodedPair]) -> bool:
    return len(pairs) > 1 and common_prefix([token_ids(pair) for pair in pairs]) > 0


def item_forward_tokens(pairs: list[EncodedPair], share_prefixes: bool) -> int:
    """Tokens one item's sequences cost in the forward pass: with prefix sharing, the shared
    prefix once and each sequence's rest; without, every sequence whole."""
    if not share_prefixes:
        return sum(pair.length for pair in pairs)
    shared = common_prefix([token_ids(pair) for pair in pairs])
    return shared + sum(pair.length - shared for pair in pairs)


def _padded(sequences: list[tuple[int, ...]], pad_id: int, side: PaddingSide, fill: int | None = None) -> tuple[torch.Tensor, list[int]]:
    """[rows, width] tensor of ``sequences`` padded with ``fill`` (default ``pad_id``) on
    ``side``, and each row's offset (the column of its first token)."""
    width = max(map(len, sequences))
    tensor = torch.full((len(sequences), width), pad_id if fill is None else fill, dtype=torch.long)
    offsets = []
    for row, sequence in enumerate(sequences):
        offset = width - len(sequence) if side == "left" else 0
        tensor[row, offset : offset + len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        offsets.append(offset)
    return tensor, offsets


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


@dataclass
class _PackedItem:
    """One item's row before padding: ids, position ids, block ids, and for each of its
    sequences the (column of the predicting token, target) of every trained token."""

    ids: list[int]
    positions: list[int]
    blocks: list[int]
    trained: list[list[tuple[int, int]]]


def _pack_item(pairs: list[EncodedPair]) -> _PackedItem:
    sequences = [token_ids(pair) for pair in pairs]
    shared = common_prefix(sequences)
    packed = _PackedItem(list(sequences[0][:shared]), list(range(shared)), [SHARED] * shared, [])
    for block, (pair, sequence) in enumerate(zip(pairs, sequences), start=1):
        start = len(packed.ids)
        packed.ids += sequence[shared:]
        packed.positions += range(shared, len(sequence))
        packed.blocks += [block] * (len(sequence) - shared)
        column = lambda index: index if index < shared else start + index - shared  # noqa: E731
        first = max(len(pair.prompt_ids), 1)  # token 0 has no predecessor
        packed.trained.append([(column(index - 1), sequence[index]) for index in range(first, len(sequence))])
    return packed


def pack_rows(encoded: list[list[EncodedPair]], row_of: dict[tuple[int, int], int], pad_id: int, side: PaddingSide) -> PackedRows:
    """One row per item, shared prefixes once (see ``PackedRows``); a head position that
    several sequences read (a shared response token) is computed once."""
    items = [_pack_item(pairs) for pairs in encoded]
    input_ids, offsets = _padded([tuple(item.ids) for item in items], pad_id, side)
    position_ids, _ = _padded([tuple(item.positions) for item in items], pad_id, side, fill=0)
    blocks, _ = _padded([tuple(item.blocks) for item in items], pad_id, side, fill=PADDING)
    width = input_ids.shape[1]
    slots: dict[tuple[int, int], int] = {}  # (flat position, target) -> head slot
    by_row: dict[int, list[int]] = {}
    for item_index, (item, offset) in enumerate(zip(items, offsets)):
        for sequence_index, trained in enumerate(item.trained):
            keys = [(item_index * width + offset + column, target) for column, target in trained]
            by_row[row_of[item_index, sequence_index]] = [slots.setdefault(key, len(slots)) for key in keys]
    order = sorted(by_row)
    keys = list(slots)
    return PackedRows(
        input_ids=input_ids,
        position_ids=position_ids,
        blocks=blocks,
        head_sources=torch.tensor([source for source, _ in keys], dtype=torch.long),
        head_targets=torch.tensor([target for _, target in keys], dtype=torch.long),
        token_slots=torch.tensor([slot for row in order for slot in by_row[row]], dtype=torch.long),
        token_sequences=torch.tensor([row for row in order for _ in by_row[row]], dtype=torch.long),
        tokens=sum(len(item.ids) for item in items),
    )


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
    input_ids, offsets = _padded([token_ids(pair) for pair in ordered], pad_id, padding_side)
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
