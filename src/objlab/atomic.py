"""Directories built whole or not at all: build under a temporary sibling name, then rename.

A cache entry (the demo organism, a benchmark's tokenizer or model directory) that a killed
process left half-written must never be mistaken for a finished one, and two processes that
build the same entry at once must both end up with one finished copy.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path


def build_directory(target: Path, build: Callable[[Path], None], is_built: Callable[[Path], bool]) -> Path:
    """``target``, built by ``build(partial_dir)`` unless ``is_built(target)`` already.

    ``build`` writes into a fresh temporary sibling directory, which is renamed to ``target``
    when it returns; if another process renamed its own copy into place first, that copy is
    kept (when ``is_built`` accepts it) and this one discarded. The partial directory is
    removed whatever happens."""
    target = Path(target)
    if is_built(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        build(partial)
        try:
            partial.rename(target)
        except OSError:
            if not is_built(target):  # not a concurrent build that finished first
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target
