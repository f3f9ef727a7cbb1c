"""Objectives registered by name. Adding one is one module that uses ``@register`` plus a test.

Built-in objectives live in this package and are imported on first use; a user's own objective
registers itself when its module is imported (``objlab --plugin mypkg.myobjective ...``).
"""

from __future__ import annotations

import importlib

from pydantic import ValidationError

from objlab.objectives.base import Objective

BUILTIN_MODULES = ("sft", "dpo", "orpo", "kl", "cft", "ip", "aware")
_REGISTRY: dict[str, type[Objective]] = {}
_loaded = False


def register(cls: type[Objective]) -> type[Objective]:
    if not getattr(cls, "name", None) or not getattr(cls, "description", None):
        raise TypeError(f"{cls.__name__} needs a `name` and a one-line `description`")
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(f"objlab.objectives.{module}")


def names() -> list[str]:
    _load_builtins()
    return list(_REGISTRY)


def get(name: str) -> type[Objective]:
    _load_builtins()
    if name not in _REGISTRY:
        raise KeyError(f"unknown objective {name!r} (known: {', '.join(_REGISTRY)})")
    return _REGISTRY[name]


def validate_params(name: str, params: dict, config=None) -> None:
    """Raise ValueError naming the objective and field when ``params`` do not fit (for config
    errors); with the whole ``config``, also the objective's cross-checks against it."""
    try:
        cls = get(name)
    except KeyError as error:
        raise ValueError(f"objectives: {error.args[0]}") from None
    try:
        validated = cls.Params.model_validate(params)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, item['loc']))}: {item['msg'].removeprefix('Value error, ')}" for item in error.errors()
        )
        raise ValueError(f"objectives.{name}: {problems}") from None
    if config is not None:
        try:
            cls.check_config(validated, config)
        except ValueError as error:
            raise ValueError(f"objectives.{name}.{error}") from None


def build(name: str, params: dict | None = None, seed: int = 0) -> Objective:
    """An objective instance with validated hyperparameters."""
    cls = get(name)
    return cls(cls.Params.model_validate(params or {}), seed=seed)
