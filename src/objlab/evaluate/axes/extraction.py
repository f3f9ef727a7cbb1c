"""Pulling a final answer out of free-form model output: numbers (GSM8K) and option letters.

Both extractors are deliberately transparent rules (regular expressions, documented below), so
a reader of an item record can redo the extraction by hand. They return ``None`` when the
output holds no answer of the expected form; a missing answer scores as wrong, never skipped.

Numeric answers: the *strict* (after ``####``) and *flexible* (last number) rules of
lm-evaluation-harness's GSM8K filters, defined in ``objlab.data.answers`` (shared with training's
``correctness`` signal) and re-exported here.
"""

from __future__ import annotations

import re

from objlab.data.answers import NUMBER, STRICT_MARKER, extract_flexible, extract_strict
from objlab.data.choice import option_letters

__all__ = ["NUMBER", "STRICT_MARKER", "extract_flexible", "extract_option_letter", "extract_strict", "option_letters"]


def _letter_patterns(letters: str) -> list[re.Pattern]:
    """Answer statements, most explicit first; the letter itself must be upper case."""
    letter = f"(?-i:([{letters}]))"
    return [
        # "The answer is (C)", "Answer: C", "final answer - **C**", "the correct option is C"
        re.compile(
            rf"(?:answer|correct (?:option|choice))(?:\s+is)?\s*[:=-]?\s*(?:option|choice)?\s*[*(\[]*{letter}(?![\w'])",
            re.IGNORECASE,
        ),
        # "(C)" or "[C]" anywhere
        re.compile(rf"[(\[]{letter}[)\]]"),
        # a line that starts with the letter: "C)", "C.", "C:", "**C**"
        re.compile(rf"^\s*\**{letter}\**\s*(?:[).:]|$)", re.MULTILINE),
    ]


def extract_option_letter(output: str, options: list[str]) -> str | None:
    """The option letter the output chooses, or None when it does not commit to exactly one.

    Rules in order: an explicit statement ("the answer is C", "Answer: (C)"); a parenthesised
    letter; a line starting with a letter ("C) ..."); a bare letter as the whole output; the
    text of exactly one option appearing in the output. Only letters of existing options count.
    """
    letters = option_letters(len(options))
    text = output.strip()
    bare = re.fullmatch(rf"\W*([{letters}])\W*", text)
    if bare:
        return bare.group(1)
    for pattern in _letter_patterns(letters):
        match = pattern.search(text)
        if match:
            return match.group(1)
    lowered = text.lower()
    named = [letters[index] for index, option in enumerate(options) if option.strip() and option.strip().lower() in lowered]
    return named[0] if len(named) == 1 else None
