"""``objlab run --plan``: what a grid will cost, before anything runs.

Training tokens are exact (the shared stream is tokenised exactly as training will); compute
tokens are computed by letting each objective prepare its sequences for the whole stream
(rejected responses, control tokens, IP instructions are all deterministic); ``aware``'s
sampled tokens are counted at their upper bound (``samples x (prompt + max_new_tokens)``).
Evaluation counts come from the configured tasks and limits (lm-eval's requests from the very
task objects and ``limit`` a run uses). Times are estimates from the
rates that ``benchmarks/`` measured on this machine kind, scaled by the model's matmul
parameters (never below the measured rates' cost), and are always labelled as estimates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources

from objlab.config import ExperimentConfig
from objlab.data.chat import ChatEncoder
from objlab.data.stream import TaskStream, plan_budgets
from objlab.data.tasks import load_examples
from objlab.lm.loading import load_tokenizer
from objlab.lm.loading import matmul_parameters as count_matmul_parameters
from objlab.objectives import registry
from objlab.objectives.base import Sample, StepContext
from objlab.runner.grid import TrainUnit, expand, snapshots_enabled
from objlab.store import BASE_CELL
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


def plan_evaluation(config: ExperimentConfig, checkpoints: int) -> EvalPlan:
    """Counts per checkpoint from the items the evaluation itself will load (the same loaders,
    limits, seeded subsets and attack selection -- named sets and StrongREJECT's attacks
    expanded), so the plan cannot disagree with the run."""
    from objlab.evaluate.axes.attack_catalog import configured_attacks
    from objlab.evaluate.axes.capability import load_task_items
    from objlab.evaluate.instruments import check_instruments
    from objlab.scoring.specs import needs_judge, overrefusal_needs_judge
    from objlab.evaluate.axes.sources import load_forbidden_prompts, load_overrefusal_prompts, load_persona

    settings = config.eval
    check_instruments(settings)
    generations, scored, judge, skipped, attacks = 0, 0, 0, [], []
    new_tokens = settings.generation.max_new_tokens
    tokens = 0
    for task in settings.capability:
        if task.kind == "rubric" and settings.judge.kind == "none":
            skipped.append(f"capability {task.display_name}: no judge configured")
            continue
        count = len(load_task_items(task, settings.subset_seed))
        generations += count
        tokens += count * (task.max_new_tokens or new_tokens)
        judge += count if task.kind == "rubric" else 0
    if (jailbreak := settings.jailbreak) is not None:
        prompts = len(load_forbidden_prompts(jailbreak.prompts, jailbreak.limit, seed=settings.subset_seed,
                                             hf_config=jailbreak.hf_config, split=jailbreak.split))
        judged = needs_judge(settings)  # from the scorers' declared needs (a python: scorer asks no judge)
        for attack in configured_attacks(jailbreak):
            if attack.requires_translator and jailbreak.translator is None:
                skipped.append(f"jailbreak {attack.name}: needs a translator, none configured")
                continue
            attacks.append(attack.name)
            generations += prompts
            tokens += prompts * (jailbreak.max_new_tokens or new_tokens)
            judge += prompts if judged else 0
    if (overrefusal := settings.overrefusal) is not None:
        count = len(load_overrefusal_prompts(overrefusal, seed=settings.subset_seed))
        generations += count
        tokens += count * (overrefusal.max_new_tokens or new_tokens)
        judge += count if overrefusal_needs_judge(settings) else 0
    if settings.persona is not None:
        for path in settings.persona.trait_files().values():
            scored += 2 * len(load_persona(path, settings.persona.limit, seed=settings.subset_seed))
    plan = EvalPlan(checkpoints, generations, tokens, scored, judge, skipped, attacks=attacks)
    if settings.lm_eval is not None:
        from objlab.evaluate.axes.harness import count_requests

        plan.lm_eval_requests_per_checkpoint, plan.lm_eval_generated_tokens_per_checkpoint = count_requests(settings.lm_eval)
    return plan


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


def build_plan(config: ExperimentConfig, finished: set[str] = frozenset()) -> GridPlan:
    encoder = ChatEncoder(load_tokenizer(config.model), config.train.max_length)
    examples = load_examples(config.data)
    units = [plan_unit(config, unit, examples, encoder, set(finished)) for unit in expand(config)]
    pending_cells = sum(len(unit.pending) for unit in units)
    base_pending = BASE_CELL not in finished
    evaluation = plan_evaluation(config, pending_cells + int(base_pending))
    mode = "snapshots (one run per objective and seed)" if snapshots_enabled(config) else "one run per cell"
    plan = GridPlan(mode, units, evaluation, base_pending, None)
    rates = measured_rates().get(machine_kind())
    if rates:
        plan.estimate = estimate_seconds(plan, matmul_parameters(config), rates)
    return plan


def matmul_parameters(config: ExperimentConfig) -> int:
    """Parameters in the model's linear layers (LM head included), from its config alone."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    model_config = AutoConfig.from_pretrained(config.model.name_or_path, revision=config.model.revision, trust_remote_code=config.model.trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config, trust_remote_code=config.model.trust_remote_code)
    return count_matmul_parameters(model)


def render_plan(plan: GridPlan, console) -> None:
    """Print the plan: one row per training unit, the evaluation's counts, the estimate."""
    from rich.table import Table

    table = Table("unit", "steps", "task tokens", "compute tokens", "sampled tokens (max)", "cells (pending)", title=f"training: {plan.mode}")
    for unit in plan.units:
        table.add_row(unit.unit, f"{unit.steps:,}", f"{unit.task_tokens:,}", f"{unit.compute_tokens:,}", f"{unit.generated_tokens:,}", f"{len(unit.cells)} ({len(unit.pending)})")
    console.print(table)
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
    if plan.estimate is None:
        console.print(f"time estimate: none (no benchmark rates for machine kind {machine_kind()!r}; run benchmarks/ with --save-rates)")
    else:
        estimate = plan.estimate
        console.print(
            f"time ESTIMATE from measured rates ({estimate['rates_from']}): training {estimate['train_s'] / 60:.1f} min, "
            f"evaluation {estimate['eval_s'] / 60:.1f} min (generation and scoring only; judge latency not included)"
        )
