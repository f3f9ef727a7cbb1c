"""Subsets that keep a benchmark's balance: what ``limit`` draws from an evaluation file.

Benchmark files are often sorted by category (StrongREJECT's CSV is: ``limit: 100`` of its
first rows covers 2 of its 6 categories), so the first rows are a biased subset. ``limit``
therefore draws a seeded sample, stratified by a category field where the rows have one:

- allocation: each category gets ``limit x its share of the rows``, rounded by largest
  remainder (ties to the category seen first), and -- when ``limit`` is at least the number of
  categories -- at least one item, taken from the largest allocations;
- within a category, a seeded sample without replacement (``random.Random`` on the seed, the
  file's name and the category, so adding a category never reshuffles another);
- the drawn rows keep the file's order, so item ids and records read in file order.

The same (file, limit, seed) always gives the same rows: every cell and the base model answer
the same items, which the paired tests need. ``SubsetInfo`` records what was drawn (the ids,
the count per category) for the evaluation info.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from objlab.data.loaders import row_id
from objlab.data.records import LoadedRows
from objlab.records.evaluation import SubsetInfo

T = TypeVar("T")


@dataclass(frozen=True)
class Sampled(Generic[T]):
    """The items an axis evaluates, with the record of how they were chosen (a sequence of items)."""

    items: list[T]
    info: SubsetInfo

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __getitem__(self, index):
        return self.items[index]


def allocate(sizes: dict[str, int], limit: int) -> dict[str, int]:
    """Items per category: proportional, largest remainder, at least one each when possible."""
    total = sum(sizes.values())
    exact = {category: limit * size / total for category, size in sizes.items()}
    counts = {category: int(share) for category, share in exact.items()}
    order = sorted(sizes, key=lambda category: (-(exact[category] - counts[category]), list(sizes).index(category)))
    for category in order[: limit - sum(counts.values())]:
        counts[category] += 1
    if limit >= len(sizes):
        for category in [c for c in sizes if counts[c] == 0]:
            donor = max(counts, key=lambda c: (counts[c], -list(sizes).index(c)))
            counts[donor] -= 1
            counts[category] += 1
    return {category: min(count, sizes[category]) for category, count in counts.items()}


def _strata(loaded: LoadedRows, category_field: str | None) -> dict[str, list[int]]:
    """Row positions per category value (first-seen order); one stratum without a field."""
    if category_field is None:
        return {"": list(range(len(loaded.rows)))}
    strata: dict[str, list[int]] = {}
    for position, row in enumerate(loaded.rows):
        strata.setdefault(str(row.get(category_field, "")).strip(), []).append(position)
    return strata


def sample_positions(loaded: LoadedRows, limit: int | None, seed: int, category_field: str | None) -> tuple[list[int], SubsetInfo]:
    """Positions of the rows ``limit`` keeps (every row without a limit, in file order) and the
    record of the draw. ``category_field`` is used only when every row has it as text (a file
    without the field is sampled as one stratum)."""
    if category_field is not None and not all(isinstance(row.get(category_field), str) for row in loaded.rows):
        category_field = None
    if limit is None or limit >= len(loaded.rows):
        return list(range(len(loaded.rows))), SubsetInfo(source=loaded.source, rows=len(loaded.rows), limit=limit, seed=seed)
    strata = _strata(loaded, category_field)
    counts = allocate({category: len(rows) for category, rows in strata.items()}, limit)
    name = loaded.source if loaded.source.startswith("hf:") else Path(loaded.source).name
    chosen: list[int] = []
    for category, positions in strata.items():
        chosen += random.Random(f"objlab-subset:{seed}:{name}:{category}").sample(positions, counts[category])
    chosen.sort()
    info = SubsetInfo(
        source=loaded.source, rows=len(loaded.rows), limit=limit, seed=seed, stratified_by=category_field,
        strata=dict(counts) if category_field else {}, item_ids=[row_id(loaded, loaded.lines[i]) for i in chosen],
    )
    return chosen, info


def sample_rows(loaded: LoadedRows, limit: int | None, seed: int, category_field: str | None) -> tuple[LoadedRows, SubsetInfo]:
    """``sample_positions`` applied: the kept rows (with their lines) and the record."""
    chosen, info = sample_positions(loaded, limit, seed, category_field)
    subset = LoadedRows(loaded.source, [loaded.rows[i] for i in chosen], [loaded.lines[i] for i in chosen])
    return subset, info
