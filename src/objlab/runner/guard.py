"""Refusing to mix two experiments in one run directory.

A run directory belongs to one config. Extending its grid is allowed: adding (or dropping)
objectives, budgets, seeds or models (of a ``models:`` grid) only changes which cells exist, and finished cells stay valid,
so only the new cells run. Anything else -- the model, data, LoRA, optimizer, evaluation, or
an existing objective's hyperparameters -- would make old and new cells incomparable, so it
is refused with the list of what changed.
"""

from __future__ import annotations

import json

from objlab.config import ExperimentConfig, ModelEntry, parse_config
from objlab.config.experiment import without_unset_later_fields
from objlab.errors import StateError
from objlab.store import ResultsStore

GRID_AXES = ("objectives", "budgets", "seeds", "models")


def _flatten(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        out = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out or {prefix: {}}
    return {prefix: value}


def _models_by_key(config: dict) -> dict[str, dict]:
    return {ModelEntry.model_validate(entry).cell_key: entry for entry in config.get("models") or []}


def config_changes(old: dict, new: dict) -> list[str]:
    """Dotted paths whose values differ, with old -> new, outside the grid axes."""
    old, new = without_unset_later_fields(json.loads(json.dumps(old))), without_unset_later_fields(json.loads(json.dumps(new)))
    old_flat = _flatten({k: v for k, v in old.items() if k not in GRID_AXES})
    new_flat = _flatten({k: v for k, v in new.items() if k not in GRID_AXES})
    shared = set(old.get("objectives", {})) & set(new.get("objectives", {}))
    for name in shared:
        old_flat.update(_flatten(old["objectives"][name], f"objectives.{name}"))
        new_flat.update(_flatten(new["objectives"][name], f"objectives.{name}"))
    old_models, new_models = _models_by_key(old), _models_by_key(new)
    for key in set(old_models) & set(new_models):  # a model in both: it may not change (its cells would not compare)
        old_flat.update(_flatten(old_models[key], f"models.{key}"))
        new_flat.update(_flatten(new_models[key], f"models.{key}"))
    # A key absent on one side and None on the other is no change: a section added to the schema
    # later (e.g. eval.lm_eval) reads as None in a config stored before it existed.
    return [
        f"{key}: {old_flat.get(key, '(absent)')!r} -> {new_flat.get(key, '(absent)')!r}"
        for key in sorted(set(old_flat) | set(new_flat))
        if old_flat.get(key) != new_flat.get(key)
    ]


def check_config(store: ResultsStore, config: ExperimentConfig, run_dir: str) -> dict | None:
    """The stored config when ``config`` may run on this store (unchanged, or its grid extended);
    None for a new store. A change outside the grid axes is a ``StateError`` listing it: the
    same refusal for ``objlab run`` and ``objlab run --plan``, which reads the store only."""
    stored = store.meta("config")
    if stored is None:
        return None
    old = json.loads(stored)
    changes = config_changes(old, config.model_dump(mode="json"))
    if changes:
        listed = "\n  ".join(changes)
        raise StateError(
            f"{run_dir} was started with a different config; changed:\n  {listed}\n"
            "Only objectives, budgets and seeds may change on an existing run directory "
            "(use a new --out for a different experiment)."
        )
    return old


def guard_config(store: ResultsStore, config: ExperimentConfig, run_dir: str) -> str:
    """Record the config on a new store; on an existing one, accept grid extensions only.

    Returns a one-line description of what happened (new run, resumed, extended).
    """
    new = config.model_dump(mode="json")
    old = check_config(store, config, run_dir)
    if old is None:
        store.set_meta("config", json.dumps(new, sort_keys=True))
        store.set_meta("config_fingerprint", config.fingerprint())
        return "new run"
    grown = [axis for axis in GRID_AXES if old.get(axis) != new.get(axis)]
    if not grown:
        return "resuming" if store.finished_cells() else "new run"
    parse_config(new)  # still valid as a whole
    store.set_meta("config", json.dumps(new, sort_keys=True))
    store.set_meta("config_fingerprint", config.fingerprint())
    return f"extending the grid ({', '.join(grown)} changed)"
