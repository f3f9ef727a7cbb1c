"""Deterministic per-example choices and content hashes.

Transforms that pick something per example (IP's injection, a rejected-response variant) use a
hash of (seed, example id) instead of a shared RNG, so the choice for one example never depends
on how many random numbers something else drew: resume, snapshots and different objectives all
see the same choice for the same example.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable


def stable_fraction(*keys: object) -> float:
    """A number in [0, 1) that depends only on ``keys``."""
    digest = hashlib.blake2b("\x1f".join(map(str, keys)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def stable_index(count: int, *keys: object) -> int:
    """An index in [0, count) that depends only on ``keys``."""
    return min(int(stable_fraction(*keys) * count), count - 1)


def records_hash(records: Iterable[object]) -> str:
    """A short content hash of records (dataclasses or dicts), recorded in manifests."""
    digest = hashlib.sha256()
    for record in records:
        value = record.__dict__ if hasattr(record, "__dict__") else record
        digest.update(json.dumps(value, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]
