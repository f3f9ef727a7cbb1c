"""A translator written in Python (``eval.jailbreak.translator: {kind: python, function: ...}``).

The jailbreak axis asks a translator for batches and expects a failure as an entry, never an
exception (``TranslatorLike``). A user's translator -- the demo organism's own, a rule-based
one, a wrapper around a local library -- should not have to know that: it translates one text
at a time (``TextTranslator``), and ``PythonTranslator`` adapts it, turning an exception or a
non-string answer into that item's failure so the rest of the batch is kept.

The callable is called once per evaluation session with no arguments (a class works as it
is). An ``identity`` attribute on the object it returns, when present, is recorded in the
evaluation info beside the function's name, so a changed translator is visible there.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Protocol

from objlab.config.evaluation import TranslatorSettings
from objlab.config.python_ref import load_callable
from objlab.errors import ConfigError
from objlab.scoring.judges import Translation

__all__ = ["PythonTranslator", "TextTranslator"]

WHERE = "eval.jailbreak.translator.function"


class TextTranslator(Protocol):
    """What a ``kind: python`` translator's function returns: one text in, its translation out.

    ``language`` is the non-English side, named in English ("Zulu", "Scots Gaelic"): the
    configured language for objlab's ``translation`` attack, the attack's own for StrongREJECT's
    ``translation_<language>``. Raise (or return something other than a string) to fail an item.
    """

    def to_language(self, text: str, language: str) -> str: ...

    def to_english(self, text: str, language: str) -> str: ...


def _check_method(translator: object, name: str, function: str) -> Callable[[str, str], object]:
    method = getattr(translator, name, None)
    if not callable(method):
        raise ConfigError(f"{WHERE}: {function!r} returned a {type(translator).__name__} without a {name}(text, language) method")
    try:
        inspect.signature(method).bind("text", "language")
    except TypeError:
        raise ConfigError(f"{WHERE}: {function!r}: {name} must accept (text, language), its signature is {inspect.signature(method)}") from None
    except ValueError:  # no signature to inspect (a builtin): trust it
        pass
    return method


class PythonTranslator:
    """``TranslatorLike`` over a user's ``TextTranslator``, one text at a time."""

    def __init__(self, settings: TranslatorSettings) -> None:
        function = settings.function or ""
        try:
            factory = load_callable(function)
        except ValueError as error:
            raise ConfigError(f"{WHERE}: {error}") from None
        try:
            translator = factory()
        except Exception as error:  # noqa: BLE001 -- the user's constructor
            raise ConfigError(f"{WHERE}: calling {function!r}() failed: {type(error).__name__}: {error}") from None
        self._to_language = _check_method(translator, "to_language", function)
        self._to_english = _check_method(translator, "to_english", function)
        self.language = settings.language
        own = getattr(translator, "identity", None)
        self.identity = f"python:{function}" + (f"|{own}" if own else "") + f"|{settings.language}"
        self.calls = 0

    def _each(self, method: Callable[[str, str], object], texts: list[str], language: str) -> list[Translation]:
        out: list[Translation] = []
        for text in texts:
            self.calls += 1
            try:
                result = method(text, language)
            except Exception as error:  # noqa: BLE001 -- one item fails, the batch goes on
                out.append((None, f"translation failed: {type(error).__name__}: {error}"))
                continue
            if isinstance(result, str):
                out.append((result, None))
            else:
                out.append((None, f"translation failed: the translator returned a {type(result).__name__}, expected str"))
        return out

    def to_language(self, texts: list[str], language: str | None = None) -> list[Translation]:
        return self._each(self._to_language, texts, language or self.language)

    def to_english(self, texts: list[str], language: str | None = None) -> list[Translation]:
        return self._each(self._to_english, texts, language or self.language)
