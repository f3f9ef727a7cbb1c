"""Pulling a final answer out of free-form model output: numbers (GSM8K) and option letters.

Both extractors are deliberately transparent rules (regular expressions, documented below), so
a reader of an item record can redo the extraction by hand. They return ``None`` when the
output holds no answer of the expected form; a missing answer scores as wrong, never skipped.

Numeric answers, two rules from one generation (as lm-evaluation-harness's GSM8K filters):

- *strict*: the number after the first ``####`` marker (the GSM8K answer format). Without a
  marker there is no strict answer, however many numbers the output holds.
- *flexible*: the last number anywhere in the output.

Both accept thousands separators (``1,000``), a currency sign (``$5``), a trailing sentence
period (``42.``) and negative numbers (``-3``; a hyphen after a letter or digit, as in
``5-3`` or ``COVID-19``, is not a sign). Values are compared after ``normalize_number``
(``1,000.00`` == ``1000``).
"""

from __future__ import annotations

import re

from objlab.data.tasks import normalize_number

# A number: optional sign (only where the hyphen does not join two words), optional currency
# sign, digits with well-formed thousands groups or plain digits, optional decimals.
_NUMBER = r"(?:(?<![\w.])-)?(?:\$\s?)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\d)"
NUMBER = re.compile(_NUMBER)
STRICT_MARKER = re.compile(r"####\s*(" + _NUMBER + ")")


def _clean(number_text: str) -> str | None:
    return normalize_number(number_text.replace("$", "").replace(" ", ""))


def extract_strict(output: str) -> str | None:
    """The normalised number after the first ``#### `` marker; None without a marker."""
    match = STRICT_MARKER.search(output)
    return _clean(match.group(1)) if match else None


def extract_flexible(output: str) -> str | None:
    """The normalised last number in the output; None when it holds no number."""
    numbers = NUMBER.findall(output)
    return _clean(numbers[-1]) if numbers else None


def option_letters(count: int) -> str:
    """The letters naming ``count`` options: A, B, C, ..."""
    return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:count]


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
