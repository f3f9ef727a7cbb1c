"""Objectives by name: ``OBJECTIVES`` (``objectives.base``) with objlab's own imported here.

Adding one is one module whose class carries ``@register`` (from ``objlab.objectives.base``,
re-exported here), plus a test. A user's objective registers itself when its module is
imported (``objlab --plugin mypkg.myobjective ...``). Look objectives up through this module:
importing it imports objlab's own.
"""

from __future__ import annotations

from pydantic import ValidationError

from objlab.objectives import sft, dpo, orpo, kl, cft, ip, aware  # noqa: F401, I001 -- register themselves, in this (listing) order
from objlab.objectives.base import OBJECTIVES, Objective, register
from objlab.registry import RegistryError

__all__ = ["OBJECTIVES", "build", "get", "names", "register", "validate_params"]


def names() -> list[str]:
    return OBJECTIVES.names()


def get(name: str) -> type[Objective]:
    try:
        return OBJECTIVES.get(name)
    except RegistryError:
        raise KeyError(f"unknown objective {name!r} (known: {', '.join(OBJECTIVES.names())})") from None


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
