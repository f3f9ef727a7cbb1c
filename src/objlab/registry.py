"""One registry type for everything objlab finds by name: objectives, task adapters, scorers,
attack encoders and decoders.

A ``Registry`` maps a name to an object. objlab's own entries register themselves with the
decorator when their module is imported, and each package imports its built-in modules with
ordinary import statements (so the import graph shows every dependency). A user's entry can
also be registered *lazily*, by target (``"mypackage.module:attribute"``), and is imported on
first ``get`` -- the way lm-evaluation-harness's registry defers plugins -- or come from an
installed package's entry points (``discover``). Every entry is checked when it materialises:
against ``base`` (a class the entry must subclass, or an instance check for non-classes), so a
wrong registration fails naming the registry, the name and what was expected.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["Registry", "RegistryError"]


class RegistryError(LookupError):
    """An unknown name, a duplicate registration or an entry of the wrong kind."""


def _import_target(target: str) -> Any:
    """The object ``module:attribute`` names (``attribute`` may be dotted)."""
    module_name, separator, attribute = target.partition(":")
    if not separator or not module_name or not attribute:
        raise RegistryError(f"expected 'module:attribute', got {target!r}")
    try:
        value: Any = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 -- a plugin may fail in any way while importing
        raise RegistryError(f"cannot import {module_name!r} (for {target!r}): {type(error).__name__}: {error}") from None
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise RegistryError(f"module {module_name!r} has no attribute {attribute!r} (for {target!r})")
        value = getattr(value, part)
    return value


class Registry(Generic[T]):
    """Named entries of one kind (``kind`` is used in messages: "objective", "scorer", ...).

    ``base``: a class every entry must be (a subclass of, for classes; an instance of,
    otherwise), or ``None`` for callables (functions) checked only for being callable.
    ``load_builtins``: called once before the first lookup, to import the package's own entries.
    """

    def __init__(self, kind: str, base: type | None = None, load_builtins: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self.base = base
        self._entries: dict[str, T | str] = {}
        self._lock = threading.RLock()
        self._load_builtins = load_builtins
        self._builtins_loaded = load_builtins is None

    # -- registering ----------------------------------------------------------------------
    def register(self, name: str, entry: T | None = None, *, target: str | None = None, replace: bool = False):
        """Register ``entry`` (or lazily ``target``, ``"module:attribute"``) under ``name``.

        Without ``entry`` and ``target`` it is a decorator: ``@registry.register("name")``.
        Registering a name twice is an error unless ``replace`` (a plugin overriding a built-in
        says so explicitly); registering the very same object again is harmless (a module
        imported twice under two names).
        """
        if not name or not isinstance(name, str):
            raise RegistryError(f"a {self.kind} needs a non-empty name, got {name!r}")
        if entry is not None and target is not None:
            raise RegistryError("give an entry or a target, not both")
        if target is not None:
            self._put(name, target, replace)
            return target
        if entry is not None:
            self._put(name, self._checked(name, entry), replace)
            return entry

        def decorate(obj: T) -> T:
            self._put(name, self._checked(name, obj), replace)
            return obj

        return decorate

    def _put(self, name: str, entry: T | str, replace: bool) -> None:
        with self._lock:
            present = self._entries.get(name)
            if present is not None and present is not entry and not replace:
                raise RegistryError(f"{self.kind} {name!r} is already registered ({_describe(present)}); pass replace=True to override it")
            self._entries[name] = entry

    def _checked(self, name: str, entry: Any) -> T:
        base = self.base
        if base is None:
            ok = callable(entry)
            expected = "a callable"
        elif isinstance(entry, type):
            ok = issubclass(entry, base)
            expected = f"a subclass of {base.__name__}"
        else:
            ok = isinstance(entry, base)
            expected = f"an instance of {base.__name__}"
        if not ok:
            raise RegistryError(f"{self.kind} {name!r}: expected {expected}, got {_describe(entry)}")
        return entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a plugin's entry, when a test or a session is done with it)."""
        with self._lock:
            self._entries.pop(name, None)

    def discover(self, group: str) -> list[str]:
        """Register, lazily, every entry point of ``group`` from installed packages; returns their names."""
        found = []
        for point in metadata.entry_points(group=group):
            if point.name not in self._entries:
                self._put(point.name, point.value, replace=False)
                found.append(point.name)
        return found

    # -- looking up -------------------------------------------------------------------------
    def _ensure_builtins(self) -> None:
        if self._builtins_loaded:
            return
        with self._lock:
            if not self._builtins_loaded:
                self._builtins_loaded = True
                self._load_builtins()

    def get(self, name: str) -> T:
        """The entry named ``name`` (a lazy one is imported and checked now)."""
        self._ensure_builtins()
        with self._lock:
            if name not in self._entries:
                raise RegistryError(f"unknown {self.kind} {name!r} (registered: {', '.join(self.names()) or 'none'})")
            entry = self._entries[name]
            if isinstance(entry, str):
                entry = self._checked(name, _import_target(entry))
                self._entries[name] = entry
            return entry

    def names(self) -> list[str]:
        """Every registered name, in registration order (built-ins first)."""
        self._ensure_builtins()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        self._ensure_builtins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def items(self) -> list[tuple[str, T]]:
        """(name, entry) pairs, every lazy entry imported."""
        return [(name, self.get(name)) for name in self.names()]


def _describe(entry: Any) -> str:
    if isinstance(entry, str):
        return f"lazy target {entry!r}"
    return getattr(entry, "__qualname__", None) or type(entry).__name__
