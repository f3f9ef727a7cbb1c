"""What ``run --plan`` reads, and what it does when it cannot: count what it can, say what not.

A plan is made before a run, often before the weights, the data or the user's instrument files
are on the machine, and often offline. ``PlanInputs`` reads each input (the tokenizer, the task
data, every evaluation source, lm-eval's tasks) and, when one cannot be read, records a note
and falls back: to a published size (``KNOWN_SIZES``), to the configured ``limit``, or to an
estimate from the budget itself, each labelled in the printed plan. With no route to the hub it
puts the hub libraries in offline mode first, so each hub read fails at once from the cache
instead of retrying for half a minute.

``strict`` inputs (the default for library callers) raise instead, as the plan always did.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from objlab.errors import ObjlabError

T = TypeVar("T")
HUB = "https://huggingface.co"
PROBE_TIMEOUT_S = 3.0
NOTE_CHARS = 220

# Published sizes of sources the paper's grid reads, used when a source cannot be read.
KNOWN_SIZES: dict[tuple[str, str | None, str], tuple[int, str]] = {
    ("hf:openai/gsm8k", "main", "test"): (1319, "GSM8K's published test split"),
    ("hf:openai/gsm8k", "main", "train"): (7473, "GSM8K's published train split"),
}
KNOWN_FILES: dict[str, tuple[int, str]] = {
    "strongreject_dataset.csv": (313, "StrongREJECT's published forbidden prompts"),
    "strongreject_small_dataset.csv": (60, "StrongREJECT's published small set"),
    "machiavellianism.jsonl": (1000, "Anthropic's published persona evaluation"),
    "narcissism.jsonl": (1000, "Anthropic's published persona evaluation"),
    "psychopathy.jsonl": (1000, "Anthropic's published persona evaluation"),
}


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub answers a TCP connection (False when offline mode is set)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT") or HUB)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def hub_offline():
    """huggingface_hub, transformers and datasets in offline mode for the block (restored
    after): a read that is not in the local cache fails at once."""
    import datasets
    import huggingface_hub.constants as hub_constants

    saved = hub_constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE
    hub_constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = saved


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= NOTE_CHARS else text[: NOTE_CHARS - 3] + "..."


def known_size(source: str, hf_config: str | None = None, split: str | None = None) -> tuple[int, str] | None:
    """A source's published row count (hub datasets by id, config and split; files by name)."""
    if source.startswith("hf:"):
        return KNOWN_SIZES.get((source, hf_config, split or "train"))
    return KNOWN_FILES.get(Path(source).name)


class PlanInputs:
    """Reads a plan's inputs; what it cannot read becomes a note and a labelled fallback."""

    def __init__(self, *, strict: bool = True, offline: bool = False) -> None:
        self.strict, self.offline = strict, offline
        self.notes: list[str] = []

    @classmethod
    def lenient(cls) -> PlanInputs:
        """For ``objlab run --plan``: never stops at a missing input; offline when the hub is
        out of reach."""
        inputs = cls(strict=False, offline=not hub_reachable())
        if inputs.offline:
            inputs.notes.append("offline: the Hugging Face hub is out of reach; hub models, tokenizers and datasets are read from the local cache only")
        return inputs

    @contextlib.contextmanager
    def hub(self):
        """The block runs in the hub libraries' offline mode when the hub is out of reach."""
        with hub_offline() if self.offline else contextlib.nullcontext():
            yield

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def read(self, what: str, read: Callable[[], T], fallback: Callable[[], tuple[T, str]] | None = None,
             instead: str | None = None) -> T | None:
        """``read()``; when it fails (and the inputs are not strict) the fallback's value with a
        note naming ``what``, why it was not read and what was counted instead, else None (noted
        with ``instead``, what the plan does without it, or as NOT COUNTED)."""
        try:
            return read()
        except (ObjlabError, OSError, RuntimeError, ValueError) as error:
            if self.strict:
                raise
            reason = _reason(error)
        replacement = fallback() if fallback else None
        if replacement is None or replacement[0] is None:
            self.note(f"{what}: not read ({reason}); {instead}" if instead else f"{what}: NOT COUNTED ({reason})")
            return None
        value, how = replacement
        self.note(f"{what}: not read ({reason}); {how}")
        return value

    def check(self, what: str, check: Callable[[], object]) -> None:
        """Run ``check``; when it fails (and the inputs are not strict) a note that the run will
        refuse to start until it passes."""
        try:
            check()
        except (ObjlabError, OSError) as error:
            if self.strict:
                raise
            self.note(f"{what}: not checked ({_reason(error)}); `objlab run` checks it again before anything trains")

    def items(self, what: str, count: Callable[[], int], source: str, limit: int | None,
              hf_config: str | None = None, split: str | None = None) -> int | None:
        """The items an evaluation source gives: counted from the source, else ``limit`` (an upper
        bound) or the source's published size."""

        def fallback():
            known = known_size(source, hf_config, split)
            if limit is not None:
                bound = min(limit, known[0]) if known else limit
                return bound, f"counted {bound:,} (its limit{', within ' + known[1] if known else ''})"
            if known:
                return known[0], f"counted {known[0]:,} ({known[1]})"
            return None

        return self.read(what, count, fallback)
