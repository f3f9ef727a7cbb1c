"""Several scorers on one run: how far they agree, over the whole grid, and where they do not.

Every jailbreak item records each scorer's attack-success verdict (``success_by`` in its
extra). Pooled over every cell of the run, each pair of scorers that decide attack success gets
its share of agreement and Cohen's kappa with a bootstrap interval (per cell the same figures
are metric rows: ``success_agreement`` / ``success_kappa``); the items on which they disagree
are listed (prompt, answer, each verdict), so a reader can see which instrument to trust for
which kind of answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import combinations

from objlab.evaluate.results.agreement import kappa_estimate, percent_agreement
from objlab.evaluate.results.stats import Estimate
from objlab.store import ResultsStore

SHOWN_DISAGREEMENTS = 40  # the report lists this many; the count says how many there are
TEXT_CHARS = 300


@dataclass(frozen=True)
class PairAgreement:
    first: str
    second: str
    agreement: Estimate
    kappa: Estimate

    @property
    def label(self) -> str:
        return f"{self.first} ~ {self.second}"


@dataclass(frozen=True)
class Disagreement:
    cell_id: str
    attack: str
    item_id: str
    prompt: str
    response: str
    verdicts: dict[str, bool | None]


@dataclass
class Agreement:
    """The run's scorers (primary first), their pooled pairwise agreement, the disagreements."""

    scorers: list[str] = field(default_factory=list)
    pairs: list[PairAgreement] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)
    disagreeing_items: int = 0
    items: int = 0

    @property
    def several(self) -> bool:
        return len(self.scorers) > 1


def _trimmed(text: str) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


def scorer_order(store: ResultsStore) -> list[str]:
    """The scorers that decided attack success, primary first, as the evaluation info lists them."""
    rows = store.frame("SELECT eval_manifest FROM cells WHERE eval_manifest IS NOT NULL")
    for text in rows["eval_manifest"]:
        jailbreak = (json.loads(text) or {}).get("jailbreak") or {}
        names = [scorer["name"] for scorer in jailbreak.get("scorers") or []]
        if names:
            return names
    return []


def load_agreement(store: ResultsStore, prefix: str = "") -> Agreement:
    """Pooled agreement and the disagreeing items of the run's jailbreak axis (``prefix``: of one
    model's cells only, in a grid over several models)."""
    order = scorer_order(store)
    items = store.frame('SELECT cell_id, "group", item_id, prompt, output, extra FROM items WHERE axis = \'jailbreak\' '
                        'AND starts_with(cell_id, ?) ORDER BY cell_id, "group", item_id', [prefix])
    verdicts = [json.loads(extra or "{}").get("success_by") or {} for extra in items["extra"]]
    deciders = [name for name in order if any(by.get(name) is not None for by in verdicts)]
    result = Agreement(scorers=deciders, items=len(verdicts))
    if len(deciders) < 2:
        return result
    for first, second in combinations(deciders, 2):
        pairs = [(by[first], by[second]) for by in verdicts if by.get(first) is not None and by.get(second) is not None]
        left, right = [a for a, _ in pairs], [b for _, b in pairs]
        result.pairs.append(PairAgreement(first, second, percent_agreement(left, right), kappa_estimate(left, right)))
    for (cell, attack, item_id, prompt, output), by in zip(items[["cell_id", "group", "item_id", "prompt", "output"]].itertuples(index=False), verdicts):
        decided = {name: by.get(name) for name in deciders}
        if len({value for value in decided.values() if value is not None}) > 1:
            result.disagreeing_items += 1
            if len(result.disagreements) < SHOWN_DISAGREEMENTS:
                result.disagreements.append(Disagreement(cell, attack, item_id, _trimmed(prompt), _trimmed(output), decided))
    return result
