"""A Python object named in a config as ``module:attribute`` (a user's translator factory).

The config resolves the name when it is loaded, so a typo or a module that does not import is
a ``ConfigError`` naming the field before any model is loaded or any cell is trained, not a
failure at the end of a long run. Only importing happens here: the object is called later,
by the code that uses it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["load_callable"]


def load_callable(reference: str) -> Callable[..., Any]:
    """The callable that ``module:attribute`` names (``attribute`` may be dotted: ``Class.build``).

    Raises ``ValueError`` saying what was expected; config validators turn it into a
    ``ConfigError`` that names the field.
    """
    module_name, separator, attribute = reference.partition(":")
    if not separator or not module_name.strip() or not attribute.strip():
        raise ValueError(f"expected 'module:callable' (e.g. 'mypackage.translate:make_translator'), got {reference!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 -- a user's module may fail in any way while importing
        raise ValueError(f"cannot import module {module_name!r} of {reference!r}: {type(error).__name__}: {error}") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"module {module_name!r} has no attribute {attribute!r} (from {reference!r})")
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{reference!r} is a {type(target).__name__}, not a callable")  # noqa: TRY004 -- pydantic reports ValueError
    return target
