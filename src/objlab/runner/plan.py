"""``objlab run --plan``: what a grid will cost, before anything runs.

Training tokens are exact (the shared stream is tokenised exactly as training will); compute
tokens are computed by letting each objective prepare its sequences for the whole stream
(rejected responses, control tokens, IP instructions are all deterministic); ``aware``'s
sampled tokens are counted at their upper bound (``samples x (prompt + max_new_tokens)``).
Evaluation counts come from the configured tasks and limits (lm-eval's requests from the very
task objects and ``limit`` a run uses). Times are estimates from the
rates that ``benchmarks/`` measured on this machine kind (or on the GPU ``--gpu`` names, measured
or derived: ``pricing``), scaled by the model's matmul parameters (never below the measured
rates' cost), and are always labelled as estimates.

``objlab run --plan`` never stops at an input it cannot read (offline, before the weights or
the user's files are there): ``plan_inputs`` counts what it can and notes what it could not,
``plan_estimates`` prices training from the budgets when the stream cannot be tokenised, and
the study's own models are priced from their shapes (``architectures``) with no download. A
config with several models (``models:``) is planned per model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from importlib import resources

from objlab.config import ExperimentConfig
from objlab.data.chat import ChatEncoder
from objlab.data.stream import TaskStream, plan_budgets
from objlab.data.tasks import load_examples
from objlab.lm.loading import load_tokenizer
from objlab.lm.loading import matmul_parameters as count_matmul_parameters
from objlab.objectives import registry
from objlab.objectives.base import Sample, StepContext
from objlab.runner.architectures import known_architecture
from objlab.runner.grid import TrainUnit, base_cell_id, expand, snapshots_enabled
from objlab.runner.plan_estimates import estimate_unit, preset_requests
from objlab.runner.plan_inputs import PlanInputs
from objlab.runner.pricing import GPUS, PricedRates, gpu_hours, rates_for_gpu
from objlab.train.steps import forwarded_tokens, prepare_step

ANSWERS_PER_SCORED_ITEM = 2  # rates.json's score_items_per_s: persona statements, each scored with two answers


@dataclass
class UnitPlan:
    unit: str
    objective: str
    steps: int
    task_tokens: int
    compute_tokens: int
    generated_tokens: int
    cells: list[str]
    pending: list[str]
    estimated: bool = False  # from the budget, not the tokenised stream (plan_estimates)


@dataclass
class EvalPlan:
    checkpoints: int
    generations_per_checkpoint: int
    generated_tokens_per_checkpoint: int
    scored_items_per_checkpoint: int
    judge_calls_per_checkpoint: int
    skipped: list[str] = field(default_factory=list)
    lm_eval_requests_per_checkpoint: dict[str, int] = field(default_factory=dict)  # by lm-eval request type
    lm_eval_generated_tokens_per_checkpoint: int = 0  # at most (each generation's max_gen_toks)
    attacks: list[str] = field(default_factory=list)  # the jailbreak attacks that will run, sets expanded


@dataclass
class GridPlan:
    mode: str
    units: list[UnitPlan]
    evaluation: EvalPlan
    base_pending: bool
    estimate: dict | None
    model: str = ""
    notes: list[str] = field(default_factory=list)  # what could not be read or counted, and what was counted instead
    priced: PricedRates | None = None
    shape: str | None = None  # where the matmul parameter count came from

    @property
    def cells(self) -> int:
        return sum(len(unit.cells) for unit in self.units)

    @property
    def gpu_hours(self) -> float | None:
        return gpu_hours(self.estimate)


class CountingContext(StepContext):
    """Stands in for sampling: returns empty samples of the longest length, counts the sampling
    cost at its upper bound. ``planning`` tells objectives to ask no external signal."""

    planning = True

    def __init__(self, encoder: ChatEncoder) -> None:
        self.encoder, self.generated = encoder, 0

    def sample(self, prompts, n, max_new_tokens, temperature):
        encoded = [tuple(self.encoder.encode_prompt(prompt)) for prompt in prompts]
        self.generated += sum(n * (len(ids) + max_new_tokens) for ids in encoded)
        return [[Sample("", ids, (0,) * max_new_tokens, False) for _ in range(n)] for ids in encoded]

    def add_compute_tokens(self, count):
        pass


def plan_unit(config: ExperimentConfig, unit: TrainUnit, examples, encoder: ChatEncoder, finished: set[str]) -> UnitPlan:
    stream = TaskStream(examples, encoder, unit.seed)
    budget_plan = plan_budgets(stream, config.train.batch_size, [cell.budget for cell in unit.cells])
    objective = registry.build(unit.objective, config.objective_params(unit.objective), unit.seed)
    objective.bind(config)
    context = CountingContext(encoder)
    processed = 0
    for step in range(budget_plan.total_steps()):
        prepared = prepare_step(objective, stream.items(*budget_plan.step_positions(step)), config.data.rejected, unit.seed, context)
        processed += forwarded_tokens(objective, prepared, encoder)
    task = budget_plan.tokens[max(budget_plan.budgets)]
    cells = [cell.cell_id for cell in unit.cells]
    return UnitPlan(
        unit=unit.name,
        objective=unit.objective,
        steps=budget_plan.total_steps(),
        task_tokens=task,
        compute_tokens=processed + context.generated - task,
        generated_tokens=context.generated,
        cells=cells,
        pending=[cell for cell in cells if cell not in finished],
    )


def plan_evaluation(config: ExperimentConfig, checkpoints: int, inputs: PlanInputs | None = None) -> EvalPlan:
    """Counts per checkpoint from the items the evaluation itself will load (the same loaders,
    limits, seeded subsets and attack selection -- named sets and StrongREJECT's attacks
    expanded), so the plan cannot disagree with the run. With lenient ``inputs`` a source that
    cannot be read is counted from its limit or published size, or left out, and noted."""
    from objlab.evaluate.axes.attack_catalog import configured_attacks
    from objlab.evaluate.axes.capability import load_task_items
    from objlab.evaluate.axes.sources import load_forbidden_prompts, load_overrefusal_prompts, load_persona
    from objlab.evaluate.axes.toxigen_prompts import load_toxicity_prompts
    from objlab.evaluate.instruments import check_instruments
    from objlab.scoring.specs import needs_judge, overrefusal_needs_judge, toxicity_needs_judge

    settings = config.eval
    inputs = inputs or PlanInputs()
    inputs.check("evaluation instruments", lambda: check_instruments(settings))
    generations, scored, judge, skipped, attacks = 0, 0, 0, [], []
    new_tokens = settings.generation.max_new_tokens
    tokens = 0
    for task in settings.capability:
        if task.kind == "rubric" and settings.judge.kind == "none":
            skipped.append(f"capability {task.display_name}: no judge configured")
            continue
        count = inputs.items(f"capability {task.display_name} ({task.source})", lambda: len(load_task_items(task, settings.subset_seed)),
                             task.source, task.limit, task.hf_config, task.hf_split)
        if count is None:
            continue
        generations += count
        tokens += count * (task.max_new_tokens or new_tokens)
        judge += count if task.kind == "rubric" else 0
    if (jailbreak := settings.jailbreak) is not None:
        prompts = inputs.items(f"jailbreak prompts ({jailbreak.prompts})", lambda: len(load_forbidden_prompts(
            jailbreak.prompts, jailbreak.limit, seed=settings.subset_seed, hf_config=jailbreak.hf_config, split=jailbreak.split)),
            jailbreak.prompts, jailbreak.limit, jailbreak.hf_config, jailbreak.hf_split) or 0
        judged = needs_judge(settings)  # from the scorers' declared needs (a python: scorer asks no judge)
        own = jailbreak.model_copy(update={"strongreject": None})
        chosen = inputs.read("jailbreak attacks", lambda: configured_attacks(jailbreak), lambda: (
            configured_attacks(own), "counted the named sets with objlab's own templates (the same attacks, by name)")) or []
        for attack in chosen:
            if attack.requires_translator and jailbreak.translator is None:
                skipped.append(f"jailbreak {attack.name}: needs a translator, none configured")
                continue
            attacks.append(attack.name)
            generations += prompts
            tokens += prompts * (jailbreak.max_new_tokens or new_tokens)
            judge += prompts if judged else 0
    prompt_axes = (  # one generation per prompt, scored by the section's scorer
        ("over-refusal", settings.overrefusal, load_overrefusal_prompts, overrefusal_needs_judge),
        ("toxicity", settings.toxicity, load_toxicity_prompts, toxicity_needs_judge),
    )
    for label, section, load, needs_judge_of in prompt_axes:
        if section is None:
            continue
        count = inputs.items(f"{label} prompts ({section.prompts})", lambda: len(load(section, seed=settings.subset_seed)),
                             section.prompts, section.limit, section.hf_config, section.hf_split) or 0
        generations += count
        tokens += count * (section.max_new_tokens or new_tokens)
        judge += count if needs_judge_of(settings) else 0
    if settings.persona is not None:
        limit = settings.persona.limit
        for trait, path in settings.persona.trait_files().items():
            count = inputs.items(f"persona {trait} ({path})", lambda: len(load_persona(path, limit, seed=settings.subset_seed)), path, limit)
            scored += 2 * (count or 0)
    plan = EvalPlan(checkpoints, generations, tokens, scored, judge, skipped, attacks=attacks)
    if settings.lm_eval is not None:
        counted = inputs.read("lm-eval tasks", lambda: _lm_eval_requests(settings.lm_eval), lambda: _preset_sizes(settings.lm_eval))
        if counted is not None:
            plan.lm_eval_requests_per_checkpoint, plan.lm_eval_generated_tokens_per_checkpoint = counted
    return plan


def _lm_eval_requests(settings) -> tuple[dict[str, int], int]:
    from objlab.evaluate.axes.harness import count_requests

    return count_requests(settings)


def _preset_sizes(settings) -> tuple[tuple[dict[str, int], int], str] | None:
    counted = preset_requests(settings)
    if counted is None:
        return None
    requests, generated, left_out = counted
    how = (f"counted preset {settings.preset}'s published sizes (generations exactly, log-likelihood requests at least "
           f"2 per document where the choices vary)" + (f"; NOT COUNTED: {', '.join(left_out)}" if left_out else ""))
    return (requests, generated), how


def measured_rates() -> dict:
    """Rates written by ``benchmarks/`` (``--save-rates``), keyed by machine kind."""
    text = resources.files("objlab.runner").joinpath("rates.json").read_text()
    return json.loads(text)


def machine_kind(device: str | None = None) -> str:
    """The key rates are stored under: the GPU's name, or ``cpu``. ``device`` (``cpu``,
    ``cuda``) names the device a run uses; by default the one objlab would pick."""
    import torch

    use_gpu = torch.cuda.is_available() if device is None else str(device).startswith("cuda")
    return torch.cuda.get_device_name() if use_gpu else "cpu"


def estimate_seconds(plan: GridPlan, matmul_parameters: int, rates: dict) -> dict | None:
    """Seconds per phase from measured rates, scaled linearly in matmul parameters for a model
    larger than the one the rates were measured on. A smaller model is priced at the measured
    rates: on the benchmark's 5M-parameter model per-step overheads already dominate, and they
    do not shrink with the model (the demo's 1M-parameter organism trains at about the tiny
    model's tokens/s, where linear scaling promised 5x that)."""
    if not rates:
        return None
    scale = max(1.0, matmul_parameters / rates["matmul_parameters"])
    train_rate = rates["train_tokens_per_s"] / scale  # forward+backward tokens per second
    pending_units = [unit for unit in plan.units if unit.pending]
    # A reference or rejected forward costs about a third of a training token (no backward).
    train = sum((unit.task_tokens + unit.compute_tokens / 3 + unit.generated_tokens) / train_rate for unit in pending_units)
    evaluation = plan.evaluation
    generated = evaluation.generated_tokens_per_checkpoint + evaluation.lm_eval_generated_tokens_per_checkpoint
    # An lm-eval log-likelihood request is one scored continuation, as a persona answer is; the
    # benchmark's rate counts persona statements, each two scored answers.
    scored = evaluation.scored_items_per_checkpoint + sum(
        count for kind, count in evaluation.lm_eval_requests_per_checkpoint.items() if kind != "generate_until"
    )
    answers_per_s = ANSWERS_PER_SCORED_ITEM * rates["score_items_per_s"] / scale
    per_checkpoint = generated / (rates["generate_tokens_per_s"] / scale) + scored / answers_per_s
    return {"train_s": train, "eval_s": per_checkpoint * evaluation.checkpoints, "rates_from": rates.get("measured", "?")}


def estimated_unit(config: ExperimentConfig, unit: TrainUnit, finished: set[str]) -> UnitPlan:
    """A unit priced from its budget when the stream cannot be tokenised (``plan_estimates``)."""
    estimate = estimate_unit(config, unit)
    cells = [cell.cell_id for cell in unit.cells]
    return UnitPlan(unit.name, unit.objective, 0, estimate.task_tokens, estimate.compute_tokens, estimate.generated_tokens,
                    cells, [cell for cell in cells if cell not in finished], estimated=True)


def _stream(config: ExperimentConfig, inputs: PlanInputs):
    """The chat encoder and the task examples, or None for either that cannot be read."""
    instead = "training priced from the budgets (*)"
    tokenizer = inputs.read(f"tokenizer of {config.model.name_or_path}", lambda: load_tokenizer(config.model), instead=instead)
    examples = inputs.read(f"task data {config.data.source}", lambda: load_examples(config.data), instead=instead)
    return (ChatEncoder(tokenizer, config.train.max_length) if tokenizer is not None else None), examples


def priced_rates(gpu: str | None) -> PricedRates | None:
    """The rates to price at: the named GPU's (measured or derived), else this machine kind's."""
    measured = measured_rates()
    if gpu is not None:
        return rates_for_gpu(gpu, measured)
    kind = machine_kind()
    rates = measured.get(kind)
    return PricedRates(kind, rates, f"measured rates ({rates.get('measured', '?')})", False) if rates else None


def build_plan(config: ExperimentConfig, finished: set[str] = frozenset(), *, gpu: str | None = None,
               inputs: PlanInputs | None = None, evaluation: EvalPlan | None = None, key: str | None = None) -> GridPlan:
    """One model's plan (``config``: that model's; ``key``: its key in a grid over several).
    ``inputs``: how unreadable inputs are handled (strict by default); ``evaluation``: an
    evaluation plan already counted (the same for every model of a grid)."""
    inputs = inputs or PlanInputs()
    finished = set(finished)
    encoder, examples = _stream(config, inputs)
    if encoder is not None and examples is not None:
        units = [plan_unit(config, unit, examples, encoder, finished) for unit in expand(config, key)]
    else:
        units = [estimated_unit(config, unit, finished) for unit in expand(config, key)]
        for unit in expand(config, key):
            if (note := estimate_unit(config, unit).note) is not None:
                inputs.note(note)
    pending_cells = sum(len(unit.pending) for unit in units)
    base_pending = base_cell_id(key) not in finished
    checkpoints = pending_cells + int(base_pending)
    if evaluation is None:
        evaluation = plan_evaluation(config, checkpoints, inputs)
    else:
        evaluation = replace(evaluation, checkpoints=checkpoints)
    mode = "snapshots (one run per objective and seed)" if snapshots_enabled(config) else "one run per cell"
    plan = GridPlan(mode, units, evaluation, base_pending, None, model=config.model.name_or_path, notes=inputs.notes)
    plan.priced = priced_rates(gpu)
    if plan.priced is not None and plan.priced.rates:
        known = known_architecture(config.model.name_or_path)
        plan.shape = "its shape in objlab's table of the study's models" if known else "its config.json"
        parameters = inputs.read(f"shape of {config.model.name_or_path}", lambda: matmul_parameters(config), instead="no time estimate")
        if parameters is not None:
            plan.estimate = estimate_seconds(plan, parameters, plan.priced.rates)
    return plan


@dataclass
class StudyPlan:
    """Every model's plan, and the notes they share (the hub, the evaluation's sources)."""

    plans: list[GridPlan]
    notes: list[str]

    @property
    def gpu_hours(self) -> float | None:
        hours = [plan.gpu_hours for plan in self.plans]
        return None if any(value is None for value in hours) else sum(hours)


def build_study(config: ExperimentConfig, finished: set[str] = frozenset(), *, gpu: str | None = None,
                inputs: PlanInputs | None = None) -> StudyPlan:
    """One plan per model of the config (its own training batch, its own cells and base cell).
    The evaluation is counted once: its sources are the same for every model."""
    inputs = inputs or PlanInputs()
    plans = []
    with inputs.hub():
        evaluation = plan_evaluation(config.per_model()[0][1], 0, inputs)
        for key, single in config.per_model():
            mine = PlanInputs(strict=inputs.strict, offline=inputs.offline)
            plans.append(build_plan(single, finished, gpu=gpu, inputs=mine, evaluation=evaluation, key=key))
    return StudyPlan(plans, inputs.notes)


def matmul_parameters(config: ExperimentConfig) -> int:
    """Parameters in the model's linear layers (LM head included): from objlab's table for the
    study's own models (no download), else from the model's config alone."""
    known = known_architecture(config.model.name_or_path)
    if known is not None:
        return known.matmul_parameters()
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    model_config = AutoConfig.from_pretrained(config.model.name_or_path, revision=config.model.revision, trust_remote_code=config.model.trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config, trust_remote_code=config.model.trust_remote_code)
    return count_matmul_parameters(model)


ESTIMATED_UNITS = ("* from the budgets (the task data or the tokenizer was not read; see the notes): task tokens are the "
                   "largest budget, compute tokens (~) assume a rejected sequence as long as the reference for dpo, orpo and "
                   "cft and a reference pass for dpo and kl; steps are not known")
NOT_INCLUDED = "generation and scoring only; judge and translator latency not included"


def _unit_row(unit: UnitPlan) -> list[str]:
    if unit.estimated:
        return [unit.unit, "-", f"{unit.task_tokens:,}*", f"~{unit.compute_tokens:,}", "-", f"{len(unit.cells)} ({len(unit.pending)})"]
    return [unit.unit, f"{unit.steps:,}", f"{unit.task_tokens:,}", f"{unit.compute_tokens:,}", f"{unit.generated_tokens:,}",
            f"{len(unit.cells)} ({len(unit.pending)})"]


def render_evaluation(plan: GridPlan, console) -> None:
    """The evaluation's counts per checkpoint (the same for every model of a grid)."""
    evaluation = plan.evaluation
    console.print(
        f"evaluation: {evaluation.checkpoints} checkpoints to evaluate"
        f"{' (base model included)' if plan.base_pending else ''}; per checkpoint "
        f"{evaluation.generations_per_checkpoint:,} generations (up to {evaluation.generated_tokens_per_checkpoint:,} new tokens), "
        f"{evaluation.scored_items_per_checkpoint:,} scored persona answers, {evaluation.judge_calls_per_checkpoint:,} judge calls "
        f"(at most; cached verdicts are not asked again)"
    )
    if evaluation.lm_eval_requests_per_checkpoint:
        requests = ", ".join(f"{count:,} {kind}" for kind, count in evaluation.lm_eval_requests_per_checkpoint.items())
        console.print(
            f"lm-eval per checkpoint: {requests} requests"
            f" (generations up to {evaluation.lm_eval_generated_tokens_per_checkpoint:,} new tokens)"
        )
    if evaluation.attacks:
        console.print(f"  jailbreak attacks ({len(evaluation.attacks)}): {', '.join(evaluation.attacks)}")
    for note in evaluation.skipped:
        console.print(f"  skipped: {note}")


def estimate_line(plan: GridPlan) -> str:
    """The time estimate, labelled: GPU-hours on a named GPU, else minutes on this machine kind."""
    if plan.priced is None:
        return f"time estimate: none (no benchmark rates for machine kind {machine_kind()!r}; run benchmarks/ with --save-rates)"
    if plan.estimate is None:
        return f"time estimate: none (the shape of {plan.model} could not be read; see the notes)"
    estimate, priced = plan.estimate, plan.priced
    if priced.gpu in GPUS:
        return (f"time ESTIMATE on one {priced.gpu}, {plan.model} priced from {plan.shape}: training {estimate['train_s'] / 3600:,.1f} "
                f"GPU-hours, evaluation {estimate['eval_s'] / 3600:,.1f} GPU-hours, {plan.gpu_hours:,.1f} in all "
                f"({NOT_INCLUDED}); rates {priced.label}")
    return (f"time ESTIMATE from measured rates ({estimate['rates_from']}): training {estimate['train_s'] / 60:.1f} min, "
            f"evaluation {estimate['eval_s'] / 60:.1f} min ({NOT_INCLUDED})")


def render_plan(plan: GridPlan, console, evaluation: bool = True, notes: list[str] = ()) -> None:
    """Print the plan: one row per training unit, the evaluation's counts, the notes (``notes``:
    shared ones, first), the estimate."""
    from rich.table import Table

    title = f"{plan.model}: training, {plan.mode}" if plan.model else f"training: {plan.mode}"
    table = Table("unit", "steps", "task tokens", "compute tokens", "sampled tokens (max)", "cells (pending)", title=title)
    for unit in plan.units:
        table.add_row(*_unit_row(unit))
    console.print(table)
    if any(unit.estimated for unit in plan.units):
        console.print(ESTIMATED_UNITS, soft_wrap=True)
    if evaluation:
        render_evaluation(plan, console)
    else:
        pending = sum(len(unit.pending) for unit in plan.units)
        console.print(f"{plan.model}: {plan.cells} cells ({pending} to run), {plan.evaluation.checkpoints} checkpoints to evaluate"
                      f"{' (base model included)' if plan.base_pending else ''}")
    for note in [*notes, *plan.notes]:
        console.print(f"  note: {note}", soft_wrap=True)
    console.print(estimate_line(plan), soft_wrap=True)


def render_study(study: StudyPlan, console) -> None:
    """Every model's plan; with several models the evaluation's counts once, a table per model
    and the study's total GPU-hours."""
    from rich.table import Table

    if len(study.plans) == 1:
        render_plan(study.plans[0], console, notes=study.notes)
        return
    for plan in study.plans:
        render_plan(plan, console, evaluation=False)
    render_evaluation(study.plans[0], console)
    for note in study.notes:
        console.print(f"  note: {note}", soft_wrap=True)
    table = Table("model", "cells", "checkpoints", "training GPU-h", "evaluation GPU-h", "GPU-h", title="the study, per model (ESTIMATE)")
    for plan in study.plans:
        estimate = plan.estimate or {}
        hours = [f"{estimate[key] / 3600:,.1f}" if key in estimate else "-" for key in ("train_s", "eval_s")]
        table.add_row(plan.model, f"{plan.cells:,}", f"{plan.evaluation.checkpoints:,}", *hours,
                      f"{plan.gpu_hours:,.1f}" if plan.gpu_hours is not None else "-")
    console.print(table)
    priced = study.plans[0].priced
    cells = sum(plan.cells for plan in study.plans)
    if study.gpu_hours is None or priced is None:
        console.print(f"all {len(study.plans)} models: {cells:,} cells; no time estimate for every model (see above)")
        return
    where = f"GPU-hours on one {priced.gpu}" if priced.gpu in GPUS else f"hours on this machine ({priced.gpu})"
    console.print(f"all {len(study.plans)} models: {cells:,} cells, ESTIMATE {study.gpu_hours:,.0f} {where} "
                  f"({NOT_INCLUDED}); rates {priced.label}", soft_wrap=True)
