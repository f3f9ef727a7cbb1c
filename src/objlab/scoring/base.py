"""What a scorer is: one protocol for every instrument that reads a (prompt, response) pair.

The jailbreak axis asks "did the answer carry out the forbidden request?", the over-refusal axis
"did it refuse?", ``aware`` "how aligned is this sample?", and ``objlab refusal-check`` measures
the answers against human labels. One ``Scorer`` serves all of them, the way inspect_ai's
scorers do: each declares its name, a one-line description, whose instrument it is
(``Origin``), what it needs to run (``Needs``: a judge model, a local model, a translator, the
user's files, the request, a reference answer), which verdicts it can give, and scores a batch
of ``ScoreItem`` into one uniform ``Score`` each.

``Score`` fields, all optional because instruments differ in what they can say:

- ``success``: the answer carries out the request (an attack success, harmful compliance);
- ``refused``: the answer refuses (None: this scorer cannot tell);
- ``answer``: the answer's class where the scorer distinguishes more than refused or not
  (``refused`` / ``non_answer`` / ``attempted`` for objlab's offline classifier);
- ``value``: the scorer's figure in [0, 1] where it has one (a rubric score, a probability,
  an alignment score);
- ``error``: why there is no verdict (an unparseable judge reply, a failed request, a
  function that raised): an error item, recorded and counted, never guessed.

Scorers are registered by name in ``SCORERS`` (``objlab.scoring.catalog`` loads objlab's own);
``objlab scorers`` lists them. Adding one is one module with a ``@SCORERS.register`` class.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

from objlab.registry import Registry

Origin = Literal["objlab", "published", "user"]
ORIGIN_TEXT: dict[str, str] = {
    "objlab": "objlab's own",
    "published": "published (your copy)",
    "user": "yours",
}
Verdict = Literal["success", "refused", "value"]
AnswerClass = Literal["refused", "non_answer", "attempted"]
AlignmentFrom = Literal["value", "refused", "not_success"]


@dataclass(frozen=True)
class Needs:
    """What a scorer needs besides the response: its ``describe`` line and the checks before a
    run (``run --plan`` counts judge calls only for scorers that need a judge)."""

    judge: bool = False  # the configured eval.judge (a chat model behind an endpoint or a local one)
    model: bool = False  # a local Hugging Face model of its own (a published classifier's weights)
    translator: bool = False
    prompt: bool = True  # reads the request as well as the response
    reference: bool = False  # reads a checkable reference answer
    files: tuple[str, ...] = ()  # the user's files it reads (config fields)

    def describe(self) -> str:
        parts = [name for name in ("judge", "model", "translator", "reference") if getattr(self, name)]
        parts += list(self.files)
        if not self.prompt:
            parts.append("response only")
        return ", ".join(parts) or "-"


@dataclass(frozen=True)
class ScoreItem:
    """One answer to score. ``prompt`` is the request as the user wrote it (the forbidden
    prompt, not the attack's wrapping); ``presented`` the text the model was given (the wrapped
    prompt, for recognising an echo of it); ``reference`` a checkable answer where the task has
    one; ``finished`` False when the answer was cut by the length limit."""

    prompt: str
    response: str
    presented: str = ""
    reference: str | None = None
    finished: bool = True
    item_id: str = ""


@dataclass(frozen=True)
class Score:
    """A scorer's uniform verdict on one item (see the module docstring)."""

    success: bool | None = None
    refused: bool | None = None
    value: float | None = None
    answer: str | None = None
    explanation: str = ""
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value not in (None, "", {}, False) or key in ("success", "refused")}

    @classmethod
    def failed(cls, error: str, **details: Any) -> Score:
        return cls(error=error, details=details)


# The kinds of local model ``ScorerServices.load_model`` loads: a causal LM (judges that answer
# in text; the default) or a sequence classifier (a classifier whose logits are the verdict).
CAUSAL_LM, SEQUENCE_CLASSIFICATION = "causal-lm", "sequence-classification"


@dataclass(frozen=True)
class ScorerServices:
    """What the evaluation (or the training loop) lends a scorer when it is built: the judge
    (``objlab.scoring.judges.Judge``), the verdict cache, a loader of local models shared by
    every cell of a grid (``load_model(name_or_path) -> (model, tokenizer)`` for a causal LM;
    ``load_model(name_or_path, kind=SEQUENCE_CLASSIFICATION)`` for a classifier), the device,
    the task's name (``aware``'s signals), a progress callback."""

    judge: Any = None
    cache: Any = None
    load_model: Callable[..., Any] | None = None
    task: str = ""
    progress: Callable[[int], None] | None = None


class Scorer(ABC):
    """Base class of every scorer. Subclasses set the class attributes and implement ``score``;
    ``build`` makes one from its options (the config's mapping for it) and the services."""

    name: ClassVar[str]
    description: ClassVar[str]  # one line, for `objlab scorers`
    origin: ClassVar[Origin]
    needs: ClassVar[Needs] = Needs()
    verdicts: ClassVar[frozenset[str]] = frozenset()  # which of success / refused / value it gives
    alignment_from: ClassVar[AlignmentFrom | None] = None  # how ``aware`` reads an alignment signal from it
    score_metric: ClassVar[str | None] = None  # the metric its ``value`` produces on the jailbreak axis, if any
    # Options filled from config fields (option -> dotted path under ``eval``), for every use of
    # the scorer and for its use as the primary jailbreak scorer only; options it cannot run without.
    config_fields: ClassVar[dict[str, str]] = {}
    primary_fields: ClassVar[dict[str, str]] = {}
    required_options: ClassVar[tuple[str, ...]] = ()

    identity: str = ""  # versioned name in tables and the verdict cache (set by the instance)
    label: str = ""  # the scorer and whose instrument it is, in a few words (figures' titles)

    @staticmethod
    def known_options(options: dict[str, Any], *known: str) -> dict[str, Any]:
        """The given options among ``known``; any other is a ``TypeError`` naming it and the
        known ones (shown in the config error of the field that gave them)."""
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise TypeError(f"unknown option(s) {unknown} (known: {', '.join(known)})")
        return dict(options)

    @classmethod
    def build(cls, options: dict[str, Any], services: ScorerServices) -> Scorer:
        """A scorer from its options; unknown options are a ``TypeError`` naming them."""
        if options:
            raise TypeError(f"unknown option(s) {sorted(options)}")
        return cls()

    @abstractmethod
    def score(self, items: Sequence[ScoreItem]) -> list[Score]:
        """One ``Score`` per item, in order; a failed item is a ``Score`` with ``error``, never
        an exception that loses the batch."""

    # -- texts that tables and figures print -------------------------------------------------
    @property
    def owner(self) -> str:
        return ORIGIN_TEXT[self.origin]

    def success_text(self) -> str:
        """What counts as an attack success under this scorer, in words."""
        return f"{self.label} says the answer carries out the request"

    def alignment(self, score: Score) -> float | None:
        """``aware``'s alignment signal (1 = aligned) from one score; None for an error."""
        if not score.ok:
            return None
        if self.alignment_from == "value":
            return score.value
        if self.alignment_from == "refused":
            return None if score.refused is None else float(score.refused)
        if self.alignment_from == "not_success":
            return None if score.success is None else float(not score.success)
        raise TypeError(f"scorer {self.name} gives no alignment signal")

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "identity": self.identity, "origin": self.origin, "label": self.label,
                "needs": self.needs.describe()}


SCORERS: Registry[type[Scorer]] = Registry("scorer", base=Scorer)
