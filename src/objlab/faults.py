"""Failpoints: named places where the fault-injection tests crash (or pause) a running grid.

Database projects test crash safety by crashing at chosen points (TiKV's and etcd's
failpoints, FoundationDB's simulated faults) rather than at random moments; objlab's tests do
the same wherever a killed grid could leave half-done work: a training step, a checkpoint or
adapter being written, an evaluation axis, judge verdicts being stored, a cell's store
transaction. Every point is inert unless the environment variable ``OBJLAB_FAULTS`` names it:

    OBJLAB_FAULTS="store.cell.before_commit=2"        SIGKILL at the 2nd time the point is reached
    OBJLAB_FAULTS="train.step=3:sleep=20,evaluate.axis=1"   pause 20 s at the 3rd step; kill at the 1st axis

SIGKILL is what ``kill -9``, the out-of-memory killer and a preempted cloud machine do: no
handler, no ``finally``, no flush. The points are listed in ``POINTS``.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from objlab.errors import ConfigError

ENV = "OBJLAB_FAULTS"
POINTS = frozenset({
    "train.step",  # an optimizer step is logged, before its checkpoint
    "train.checkpoint.written",  # a checkpoint's files are written, not yet published
    "train.checkpoint.published",  # LATEST points at the new checkpoint, older ones not yet removed
    "train.output.written",  # an adapter directory is written under its temporary name
    "evaluate.axis",  # one evaluation axis (capability, jailbreak, persona) has finished
    "verdicts.stored",  # judge verdicts were written to the results store
    "store.cell.before_commit",  # a cell's rows are inserted, the transaction not committed
    "store.cell.committed",  # a cell's transaction is committed
})
_hits: Counter[str] = Counter()


@dataclass(frozen=True)
class Fault:
    """What happens at the ``hit``-th time a point is reached: a SIGKILL, or a pause."""

    hit: int
    sleep_s: float | None = None


@lru_cache(maxsize=4)
def parse_faults(spec: str) -> dict[str, Fault]:
    """``name=N[:sleep=S]`` entries separated by commas; errors name the variable and entry."""
    faults = {}
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        name, _, rest = entry.partition("=")
        count, _, action = rest.partition(":")
        problem = None
        if name not in POINTS:
            problem = f"unknown point {name!r} (known: {', '.join(sorted(POINTS))})"
        elif not count.isdigit() or int(count) < 1:
            problem = f"expected {name}=N with N a positive hit count, got {entry!r}"
        elif action and not (action.startswith("sleep=") and _is_number(action[6:])):
            problem = f"expected nothing or ':sleep=SECONDS' after the hit count, got {action!r}"
        if problem:
            raise ConfigError(f"{ENV}: {problem}")
        faults[name] = Fault(int(count), float(action[6:]) if action else None)
    return faults


def _is_number(text: str) -> bool:
    try:
        return float(text) >= 0
    except ValueError:
        return False


def fault_point(name: str) -> None:
    """Crash or pause here if ``OBJLAB_FAULTS`` says so (a dictionary lookup otherwise)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    fault = parse_faults(spec).get(name)
    if fault is None:
        return
    _hits[name] += 1
    if _hits[name] != fault.hit:
        return
    if fault.sleep_s is not None:
        time.sleep(fault.sleep_s)
    else:
        os.kill(os.getpid(), signal.SIGKILL)
