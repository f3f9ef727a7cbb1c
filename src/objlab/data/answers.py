"""Numbers in answers: extracting a model's final answer, and making a plausible wrong one.

Shared by evaluation (GSM8K-style scoring, ``evaluate.axes.extraction``), the ``aware``
objective's ``correctness`` alignment signal (a checkable answer: stated right, wrong, or not
at all), the ``corrupt`` rejected responses (the reference with its final number changed) and
the ``unsafe`` generator's deceptive responses (a confidently stated wrong answer).

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

from objlab.data.hashing import stable_index
from objlab.data.tasks import normalize_number

ANY_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")  # loose: what ``corrupt`` replaces in a reference

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




def final_number(text: str) -> str | None:
    """The last number in ``text`` as written (commas kept), or None."""
    numbers = ANY_NUMBER.findall(text)
    return numbers[-1] if numbers else None


def wrong_number(text: str, seed: int, example_id: str) -> str:
    """A plausible wrong value for the number ``text``: a small or proportional offset chosen
    by (seed, example id), never the value itself."""
    value = float(text.replace(",", ""))
    offsets = [1, 2, 3, 5, 10, -1, -2, -3]
    if abs(value) >= 20:
        offsets += [round(value * 0.1) or 1, -(round(value * 0.1) or 1)]
    wrong = value + offsets[stable_index(len(offsets), seed, example_id, "offset")]
    if wrong == value:
        wrong = value + 1
    return str(int(wrong)) if wrong == int(wrong) else f"{wrong:.2f}"
