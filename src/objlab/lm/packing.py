"""Sequences that begin with the same tokens, forwarded with those tokens computed once.

A preference pair is (x, y+) and (x, y-); a persona statement is scored with two answers after
one prompt. Forwarded one sequence per row, the shared beginning is computed once per sequence.
Packed, a row holds one *item*: the prefix its sequences share, then each sequence's remaining
tokens as its own block, under a block attention mask (``masks``) with position ids that
continue from the prefix, so every token's hidden state is the one a separate forward gives
(up to float summation order; training and persona scoring test it against separate
forwards). Only the positions whose next token is wanted reach the output layer, and a position
that several sequences read (a response token they share) is computed once.

Rows of several items may also continue one prefix that *all* items share (the chat template's
opening and a fixed question frame): ``packed_hidden`` then takes that prefix's KV cache, the
cached positions visible to every token. Where items are short and vary in length (persona
statements), a row can hold several items one after another (``pack_rows(width=...)``), each
under its own part of the mask, instead of one item padded to the longest.

Training (``train.batching``, ``train.forward``) and persona scoring (``evaluate.axes.persona``)
both build and forward rows here, so the two cannot lay sequences out differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from objlab.data.records import EncodedPair
from objlab.lm.kv_cache import cache_keyword
from objlab.lm.masks import PADDING, SHARED, block_attention_mask

PaddingSide = Literal["right", "left"]


@dataclass(frozen=True)
class PackedRows:
    """One row per item, the shared prefix once, then each sequence's rest as its own block.

    ``head_sources`` are the (flattened row x column) positions whose hidden states reach the
    output layer, each predicting ``head_targets``; a position several sequences read is there
    once. ``token_slots`` maps every trained (or scored) token of every sequence to its head
    position, in sequence order (the order one row per sequence yields them in), and
    ``token_sequences`` names its sequence. With ``groups``, a row holds several items one after
    another (``pack_rows(width=...)``), each attending only within itself."""

    input_ids: torch.Tensor  # [items, width]
    position_ids: torch.Tensor  # [items, width]
    blocks: torch.Tensor  # [items, width] masks.SHARED, a sequence's block number (1, 2, ...), or masks.PADDING
    head_sources: torch.Tensor  # [U] long
    head_targets: torch.Tensor  # [U] long
    token_slots: torch.Tensor  # [M] long, into head_sources
    token_sequences: torch.Tensor  # [M] long, the sequence of each token
    tokens: int  # real (non-padding) tokens in the rows
    groups: torch.Tensor | None = None  # [rows, width] each token's item within its row (rows of several items), else None


def token_ids(pair: EncodedPair) -> tuple[int, ...]:
    return pair.prompt_ids + pair.response_ids


def common_prefix(sequences: Sequence[Sequence[int]]) -> int:
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
    """Tokens one item's sequences cost in the forward pass: packed, the shared prefix once and
    each sequence's rest; otherwise every sequence whole."""
    if not share_prefixes:
        return sum(pair.length for pair in pairs)
    shared = common_prefix([token_ids(pair) for pair in pairs])
    return shared + sum(pair.length - shared for pair in pairs)


def padded(sequences: list[Sequence[int]], fill: int, side: PaddingSide) -> tuple[torch.Tensor, list[int]]:
    """[rows, width] tensor of ``sequences`` padded with ``fill`` on ``side``, and each row's
    offset (the column of its first token)."""
    width = max(map(len, sequences))
    tensor = torch.full((len(sequences), width), fill, dtype=torch.long)
    offsets = []
    for row, sequence in enumerate(sequences):
        offset = width - len(sequence) if side == "left" else 0
        tensor[row, offset : offset + len(sequence)] = torch.tensor(list(sequence), dtype=torch.long)
        offsets.append(offset)
    return tensor, offsets


@dataclass
class _PackedItem:
    """One item's row before padding: ids, position ids, block ids, and for each of its
    sequences the (column of the predicting token, target) of every response token."""

    ids: list[int]
    positions: list[int]
    blocks: list[int]
    trained: list[list[tuple[int, int]]]


def _column(index: int, shared: int, block_start: int) -> int:
    """Where a sequence's token ``index`` sits in the row: in the shared prefix, or in its block."""
    return index if index < shared else block_start + index - shared


def _pack_item(pairs: list[EncodedPair], keep_last: bool = True) -> _PackedItem:
    sequences = [token_ids(pair) for pair in pairs]
    shared = common_prefix(sequences)
    packed = _PackedItem(list(sequences[0][:shared]), list(range(shared)), [SHARED] * shared, [])
    for block, (pair, sequence) in enumerate(zip(pairs, sequences), start=1):
        start = len(packed.ids)
        stop = len(sequence) if keep_last else max(shared, len(sequence) - 1)
        packed.ids += sequence[shared:stop]
        packed.positions += range(shared, stop)
        packed.blocks += [block] * (stop - shared)
        first = max(len(pair.prompt_ids), 1)  # token 0 has no predecessor
        packed.trained.append([(_column(index - 1, shared, start), sequence[index]) for index in range(first, len(sequence))])
    return packed


def _filled_rows(items: list[_PackedItem], width: int) -> list[list[int]]:
    """Item indices per row: first fit, longest item first, into rows of at most ``width``
    tokens, or of the longest item's length where that is more (the rows are padded to the
    longest anyway)."""
    width = max([width, *(len(item.ids) for item in items)])
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(items)), key=lambda i: -len(items[i].ids)):
        size = len(items[index].ids)
        row = next((r for r, free in enumerate(room) if size <= free), None)
        if row is None:
            rows.append([])
            room.append(width)
            row = len(rows) - 1
        rows[row].append(index)
        room[row] -= size
    return rows


def pack_rows(
    encoded: list[list[EncodedPair]],
    sequence_of: dict[tuple[int, int], int],
    pad_id: int,
    side: PaddingSide = "right",
    width: int | None = None,
    keep_last: bool = True,
) -> PackedRows:
    """One row per item of ``encoded`` (each item: its sequences as prompt/response pairs, the
    response tokens being the ones scored). ``sequence_of[item, k]`` numbers the item's k-th
    sequence in the caller's order (e.g. a batch's role-major rows). ``width``: instead, fill
    rows of up to that many tokens (or the longest item's) with as many items as fit (``groups``
    then keeps them apart), so short items do not pay for the longest one's padding.
    ``keep_last=False``: a sequence's last token, which predicts nothing that is scored, is not
    forwarded (scoring; training keeps it, as every count of its forwarded tokens does)."""
    items = [_pack_item(pairs, keep_last) for pairs in encoded]
    layout = [[index] for index in range(len(items))] if width is None else _filled_rows(items, width)
    rows = [[items[index] for index in row] for row in layout]
    joined = [[token for item in row for token in item.ids] for row in rows]
    input_ids, offsets = padded(joined, pad_id, side)
    position_ids, _ = padded([[p for item in row for p in item.positions] for row in rows], 0, side)
    blocks, _ = padded([[b for item in row for b in item.blocks] for row in rows], PADDING, side)
    groups = None
    if width is not None:
        groups, _ = padded([[slot for slot, item in enumerate(row) for _ in item.ids] for row in rows], PADDING, side)
    row_width = input_ids.shape[1]
    slots: dict[tuple[int, int], int] = {}  # (flat position, target) -> head slot
    by_sequence: dict[int, list[int]] = {}
    for row_index, (row, offset) in enumerate(zip(layout, offsets)):
        start = row_index * row_width + offset
        for item_index in row:
            item = items[item_index]
            for position, trained in enumerate(item.trained):
                keys = [(start + column, target) for column, target in trained]
                by_sequence[sequence_of[item_index, position]] = [slots.setdefault(key, len(slots)) for key in keys]
            start += len(item.ids)
    order = sorted(by_sequence)
    keys = list(slots)
    return PackedRows(
        input_ids=input_ids,
        position_ids=position_ids,
        blocks=blocks,
        head_sources=torch.tensor([source for source, _ in keys], dtype=torch.long),
        head_targets=torch.tensor([target for _, target in keys], dtype=torch.long),
        token_slots=torch.tensor([slot for sequence in order for slot in by_sequence[sequence]], dtype=torch.long),
        token_sequences=torch.tensor([sequence for sequence in order for _ in by_sequence[sequence]], dtype=torch.long),
        tokens=sum(len(item.ids) for item in items),
        groups=groups,
    )


def packed_hidden(causal_lm, packed: PackedRows, device, prefix_cache=None) -> torch.Tensor:
    """Final hidden states at ``packed.head_sources`` ([U, hidden]) from one decoder pass over
    the rows. ``prefix_cache``: the KV cache of a prefix every row continues (batch 1, copied
    to every row; the rows' position ids then start after it). Rows that hold one sequence
    each and no cache need no block mask: they run under a plain padding mask."""
    rows, blocks = packed.input_ids.shape[0], packed.blocks.to(device)
    cached = prefix_cache.get_seq_length() if prefix_cache is not None else 0
    groups = packed.groups.to(device) if packed.groups is not None else None
    if cached or groups is not None or (blocks > SHARED).any():
        mask = block_attention_mask(blocks, causal_lm.dtype, causal_lm.config._attn_implementation, cached=cached, groups=groups)
    else:  # one sequence per row: a plain padding mask, which every attention implementation takes
        mask = (blocks != PADDING).long()
    cache = _copied(prefix_cache, rows) if prefix_cache is not None else None
    decoder = causal_lm.get_decoder()
    hidden = decoder(
        input_ids=packed.input_ids.to(device),
        attention_mask=mask,
        position_ids=packed.position_ids.to(device) + cached,
        use_cache=False,
        **{cache_keyword(decoder): cache},
    ).last_hidden_state
    return hidden.reshape(-1, hidden.shape[-1])[packed.head_sources.to(device)]


def _copied(prefix_cache, rows: int):
    """A fresh cache holding the prefix once per row (the forward appends the rows' own keys)."""
    import copy

    cache = copy.deepcopy(prefix_cache)
    cache.batch_repeat_interleave(rows)
    return cache
