"""What every evaluation axis receives, and what it returns.

An axis (capability, jailbreak, persona, lm_eval) is a function ``(EvalContext, targets) -> {target
name: AxisOutput}``: it measures every target of the call together (so generation can mix
adapters in one batch) and returns each target's metric rows and item records separately.
``EvalContext.generate`` is the one door to decoding: it shows progress, counts generations
per target and keeps the item order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from objlab.config.evaluation import EvalSettings
from objlab.lm.generation import Generated, GenerationRequest
from objlab.scoring.cache import VerdictCache
from objlab.scoring.judges import Judge, TranslatorLike
from objlab.evaluate.session import AdapterTarget, EvalSession
from objlab.progress import Board
from objlab.records.evaluation import JailbreakDefinition, LmEvalRun, SubsetInfo
from objlab.records.items import ItemRecord, MetricRow


@dataclass
class AxisOutput:
    """One target's rows and records from one axis."""

    metrics: list[MetricRow] = field(default_factory=list)
    items: list[ItemRecord] = field(default_factory=list)


@dataclass(frozen=True)
class PromptJob:
    """A prompt to decode for a target: the chat turns before it (few-shot) and the prompt."""

    target: AdapterTarget
    prompt: str
    history: tuple[tuple[str, str], ...] = ()


@dataclass
class EvalContext:
    """The session, the settings and the scorers of one evaluation call, plus its counters and
    what the axes record for the evaluation info: the subsets they drew (``subsets``, keyed
    ``capability:<task>``, ``jailbreak``, ``persona:<trait>``), the jailbreak axis's ASR
    definition and instruments (``jailbreak``), and how the ``lm_eval`` axis ran for each target."""

    session: EvalSession
    settings: EvalSettings
    board: Board
    judge: Judge | None = None
    translator: TranslatorLike | None = None
    cache: VerdictCache | None = None  # the verdict cache (judges', translators' and local judges' verdicts)
    counts: Counter = field(default_factory=Counter)
    lm_eval_runs: dict[str, LmEvalRun] = field(default_factory=dict)
    subsets: dict[str, SubsetInfo] = field(default_factory=dict)
    jailbreak: JailbreakDefinition | None = None

    def prompt_ids(self, job: PromptJob) -> tuple[int, ...]:
        """The job rendered with the chat template (prior turns included) and tokenised."""
        if not job.history:
            return tuple(self.session.encoder.encode_prompt(job.prompt))
        messages = []
        for question, answer in job.history:
            messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        messages.append({"role": "user", "content": job.prompt})
        tokenizer = self.session.tokenizer
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return tuple(tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, jobs: list[PromptJob], max_new_tokens: int, label: str) -> list[Generated]:
        """Decode every job (any mix of targets) with a progress line; results in job order."""
        requests = [GenerationRequest(self.prompt_ids(job), job.target.name, max_new_tokens) for job in jobs]
        line = self.board.line(label, len(requests))
        try:
            outputs = self.session.generate(requests, self.settings.generation, progress=line.advance)
        finally:
            line.close()
        for job, output in zip(jobs, outputs):
            self.counts[f"generations:{job.target.name}"] += 1
            self.counts[f"generated_tokens:{job.target.name}"] += output.new_tokens
        return outputs

    def max_new_tokens(self, override: int | None) -> int:
        return override or self.settings.generation.max_new_tokens
