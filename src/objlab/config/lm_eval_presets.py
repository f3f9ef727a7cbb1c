"""Named lists of lm-evaluation-harness tasks: ``eval.lm_eval: {preset: normative}``.

``normative`` is the reference studies' normative companions as lm-eval 0.4.x names them.
The seeds list TruthfulQA (generation, MC1, MC2), ToxiGen, Winogender and EQ-Bench; lm-eval
provides all of them by name but one does not measure what the seeds mean:

- ``toxigen`` in lm-eval asks the model whether a given statement is hateful (classification
  accuracy on ToxiGen's annotated statements); it does not measure whether the model's own
  generations are toxic. It is therefore not in the preset: the seeds' measurement (ToxiGen's
  prompts, the model's own continuations, a toxicity classifier) is not an lm-eval task and
  needs an evaluation axis of objlab's own. Add ``toxigen`` to ``tasks`` by name for the
  classification task.
- ``winogender_all`` is every Winogender sentence (lm-eval also has per-gender and "gotcha"
  subsets, and a ``winogender`` tag that would run them all and count sentences twice).
- ``eq_bench`` is EQ-Bench v2's 171 questions scored by EQ-Bench's own parser (no judge).

The preset expands when the config is read: ``tasks`` holds the preset's tasks, then the
user's own (a task in both is run once), so the stored config, the plan and each evaluation's
``lm_eval`` record name every task that ran.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PresetTask:
    """One task of a preset, with its published size so an offline plan can price it.

    ``documents``: the benchmark's published item count (the split lm-eval evaluates);
    ``choices``: answer options per document where every document has the same number
    (None where it varies: TruthfulQA's MC targets); ``max_gen_toks``: the generation cap of a
    ``generate_until`` task (None for log-likelihood tasks)."""

    name: str
    documents: int
    source: str
    choices: int | None = None
    max_gen_toks: int | None = None


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    tasks: tuple[PresetTask, ...]
    not_included: tuple[str, ...] = ()

    @property
    def task_names(self) -> list[str]:
        return [task.name for task in self.tasks]


TRUTHFULQA = "TruthfulQA (Lin et al. 2022): 817 questions, lm-eval's validation split"
NORMATIVE = Preset(
    name="normative",
    description="The reference studies' normative companions that lm-eval provides: TruthfulQA (generation, MC1, MC2), Winogender, EQ-Bench.",
    tasks=(
        PresetTask("truthfulqa_gen", 817, TRUTHFULQA, max_gen_toks=256),  # no cap in its YAML: HFLM's default 256
        PresetTask("truthfulqa_mc1", 817, TRUTHFULQA),
        PresetTask("truthfulqa_mc2", 817, TRUTHFULQA),
        PresetTask("winogender_all", 720, "Winogender (Rudinger et al. 2018): 720 sentences, two candidate referents each", choices=2),
        PresetTask("eq_bench", 171, "EQ-Bench v2 (Paech 2023): 171 questions, lm-eval's README", max_gen_toks=80),
    ),
    not_included=(
        "ToxiGen generation toxicity: lm-eval's `toxigen` classifies given statements as hateful or not; it does not score the "
        "model's own generations, which needs an evaluation axis of objlab's own, not an lm-eval task",
    ),
)

PRESETS: dict[str, Preset] = {NORMATIVE.name: NORMATIVE}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a ValueError naming the known ones otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})")
    return PRESETS[name]


def expand(preset: str | None, tasks: list[str]) -> list[str]:
    """The preset's tasks, then the user's (a task in both once, where the preset puts it).
    Expanding an already expanded list changes nothing, so a stored config reads back equal."""
    if preset is None:
        return list(tasks)
    named = get_preset(preset).task_names
    return named + [task for task in tasks if task not in named]
