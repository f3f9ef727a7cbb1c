"""The verdict cache: judge verdicts and translations, keyed by what determines them.

A judge call costs money and seconds; across a grid the same (prompt, response) pair recurs
(the base model is scored once per grid, identical responses of different cells, reruns after
a crash), and a verdict at temperature 0 depends only on the judge and its input. The key is
the sha256 of (judge identity, prompt, response) -- the identity names the judge model, the
endpoint and the rubric version, so changing any of them misses the cache. Translations use
the same cache with the translator's identity and the language in the key.

``VerdictCache`` is the protocol; ``MemoryVerdictCache`` lives for one process. The results
store provides a persistent implementation with the same two methods.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Protocol


def cache_key(identity: str, prompt: str, response: str) -> str:
    """sha256 over the three parts, unambiguous (JSON-encoded, so no separator can collide)."""
    return hashlib.sha256(json.dumps([identity, prompt, response], ensure_ascii=False).encode()).hexdigest()


class VerdictCache(Protocol):
    """Where verdicts (JSON-serialisable dicts) are kept between evaluations."""

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        """The cached verdict of each key that has one (missing keys are absent)."""

    def put_many(self, verdicts: dict[str, dict]) -> None:
        """Store verdicts by key (overwriting)."""


class MemoryVerdictCache:
    """An in-process cache; thread-safe. Counts hits and misses for the evaluation's info."""

    def __init__(self) -> None:
        self._verdicts: dict[str, dict] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        with self._lock:
            found = {key: self._verdicts[key] for key in keys if key in self._verdicts}
            self.hits += len(found)
            self.misses += len(set(keys)) - len(found)
            return found

    def put_many(self, verdicts: dict[str, dict]) -> None:
        with self._lock:
            self._verdicts.update(verdicts)

    def __len__(self) -> int:
        return len(self._verdicts)
