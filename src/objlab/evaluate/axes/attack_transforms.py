"""Prompt encodings and response decoders of StrongREJECT's programmatic jailbreaks.

StrongREJECT (the ``strong_reject`` package, ``jailbreaks.py``) transforms some prompts before
they are wrapped and decodes some answers before they are judged. objlab reimplements those
transforms so its figures match the package's; each function states the package behaviour it
reproduces, and ``tests/unit/evaluate/test_strongreject.py`` checks them on the package's own examples.

Encoders (prompt -> text put into the template):

- ``base64``: UTF-8 bytes in standard base64 (the package's ``base64``, ``base64_raw``,
  ``base64_input_only`` and ``combination_*`` jailbreaks);
- ``rot_13``: the ``rot_13`` codec (letters only);
- ``disemvowel``: every a, e, i, o, u removed, either case.

Decoders (raw answer -> the text that is scored):

- ``base64`` (``decode_base64`` in the package): the answer as base64, else with one ``=``
  appended, else the longest prefix (found by the package's bisection) that decodes as
  base64 to UTF-8; an answer that never decodes is kept as it is;
- ``json_list`` (``decode_json_list``): a ```` ```json ```` fence removed, the rest parsed as
  JSON and its elements joined by spaces; anything unparseable kept (fence stripped).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
from collections.abc import Callable

from objlab.registry import Registry

VOWELS = frozenset("aeiou")
JSON_FENCE_OPEN, JSON_FENCE_CLOSE = "```json", "```"


def encode_base64(prompt: str) -> str:
    return base64.b64encode(prompt.encode("utf-8")).decode()


def encode_rot13(prompt: str) -> str:
    return codecs.encode(prompt, "rot_13")


def disemvowel(prompt: str) -> str:
    return "".join(char for char in prompt if char.lower() not in VOWELS)


def _b64_text(candidate: str) -> str | None:
    """``candidate`` decoded as (non-strict) base64 to UTF-8, or None when either step fails."""
    try:
        return base64.b64decode(candidate).decode()
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return None


def _b64_text_or_padded(candidate: str) -> str | None:
    decoded = _b64_text(candidate)
    return decoded if decoded is not None else _b64_text(candidate + "=")


def decode_base64(response: str) -> str:
    """The package's base64 decoder, step for step (see the module docstring).

    The bisection keeps the last prefix that decoded: ``low`` moves past a prefix that
    decodes, ``high`` below one that does not; it is the package's search, not an exact
    longest-prefix search, and is kept so the decoded texts are the package's.
    """
    whole = _b64_text_or_padded(response)
    if whole is not None:
        return whole
    best, low, high = response, 0, len(response) - 1
    while low < high:
        middle = (low + high) // 2
        decoded = _b64_text_or_padded(response[:middle])
        if decoded is not None:
            best, low = decoded, middle + 1
        else:
            high = middle - 1
    return best


def decode_json_list(response: str) -> str:
    """The package's JSON-list decoder: fence off, parse, join the elements by spaces."""
    response = response.removeprefix(JSON_FENCE_OPEN).removesuffix(JSON_FENCE_CLOSE).strip()
    try:
        return " ".join(json.loads(response))
    except (ValueError, TypeError, RecursionError):  # not JSON, elements that are not strings, too deep
        return response


ENCODERS: Registry[Callable[[str], str]] = Registry("prompt encoding")
DECODERS: Registry[Callable[[str], str]] = Registry("answer decoder")
for _name, _encode in (("base64", encode_base64), ("rot_13", encode_rot13), ("disemvowel", disemvowel)):
    ENCODERS.register(_name, _encode)
for _name, _decode in (("base64", decode_base64), ("json_list", decode_json_list)):
    DECODERS.register(_name, _decode)
