"""The one training loop every objective runs through.

Read it top to bottom: load data and model, attach LoRA, plan which stream positions each step
consumes, then for each optimizer step: take the next examples of the shared stream, let the
objective prepare its sequences, forward (reference first when needed), backward, clip, step,
log. The objective only supplies sequences and a loss; data order, budget, optimizer and
schedule are the loop's and identical for every objective.

Budgets: one call trains to the largest of ``budgets`` and leaves an adapter for each. A smaller
budget B ends after ``plan.examples[B]`` stream examples. When that falls inside a batch, a
separate run to B would take that step cut short; here the state is captured, the cut step is
taken and saved as B's adapter, the state is restored and the full step taken. With the
default constant-after-warm-up schedule this makes every snapshot bit-identical to a separate
run to its budget (tested). With a decaying schedule one call takes exactly one budget.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import set_seed

from objlab.config import ExperimentConfig
from objlab.data.chat import ChatEncoder
from objlab.data.hashing import records_hash
from objlab.data.rejected import describe_strategy
from objlab.data.stream import BudgetPlan, TaskStream, plan_budgets
from objlab.data.tasks import load_examples
from objlab.environment import environment
from objlab.errors import StateError, TrainingError
from objlab.faults import fault_point
from objlab.lm.adapters import causal_lm_of
from objlab.lm.loading import (
    ModelBundle,
    add_control_tokens,
    load_bundle,
    lora_config,
    model_fingerprint,
)
from objlab.lm.logits import LogitHead
from objlab.lm.masks import supports_block_mask
from objlab.lm.peft_compat import FoldBuffers, folded_lora
from objlab.objectives import registry
from objlab.objectives.base import Objective, Sample, StepContext
from objlab.progress import Board, board_or_quiet
from objlab.records.adapter import AdapterManifest
from objlab.records.evidence import summarize as summarize_evidence
from objlab.records.train_log import StepLog
from objlab.train import checkpoint as ckpt
from objlab.train.batching import micro_batches
from objlab.train.forward import forward_reference, forward_responses
from objlab.train.outputs import (
    is_complete,
    peak_memory_bytes,
    read_log,
    read_manifest,
    write_adapter_output,
    write_log,
)
from objlab.train.schedule import budget_independent, lr_factor
from objlab.train.steps import prepare_step

FULL_LOG = "train_log.jsonl"


@dataclass(frozen=True)
class TrainRequest:
    """One training run: an objective and seed, trained to the largest budget, an adapter
    directory per budget (``outputs``), checkpoints and the full log in ``work_dir``."""

    config: ExperimentConfig
    objective: str
    seed: int
    outputs: dict[int, Path]
    work_dir: Path

    @property
    def budgets(self) -> list[int]:
        return sorted(self.outputs)

    def identity(self) -> dict:
        """What a checkpoint must match to be resumed by this request. Budgets count only when
        the schedule depends on them: with a constant schedule a run to a larger budget passes
        through exactly the same states, so a grid extended by a budget resumes its runs."""
        identity = {"config": self.config.training_fingerprint(self.objective), "objective": self.objective, "seed": self.seed}
        if not budget_independent(self.config.train.schedule):
            identity["budgets"] = self.budgets
        return identity


def disable_base_dropout(model) -> None:
    """The base model's own dropout is switched off (LoRA dropout stays): the reference policy
    must be deterministic, as TRL's ``disable_dropout`` does for DPO."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    for config in (model.config, getattr(model.config, "text_config", None)):
        if config is not None and getattr(config, "attention_dropout", None):
            config.attention_dropout = 0.0


def attach_adapter(bundle: ModelBundle, request: TrainRequest, objective: Objective):
    """A fresh LoRA adapter on the base model, initialised from the seed."""
    from peft import get_peft_model

    token_ids = add_control_tokens(bundle.tokenizer, bundle.model, objective.control_tokens) if objective.control_tokens else None
    disable_base_dropout(bundle.model)
    if request.config.train.gradient_checkpointing:
        bundle.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        bundle.model.enable_input_require_grads()
    set_seed(request.seed)
    model = get_peft_model(bundle.model, lora_config(request.config.lora, token_ids))
    model.train()
    return model


class LoopContext(StepContext):
    """What objectives may ask of the loop: samples from the current policy."""

    planning = False  # a real step (``run --plan`` uses a counting context instead)

    def __init__(self, model, encoder: ChatEncoder, tokenizer) -> None:
        self.model, self.encoder, self.tokenizer = model, encoder, tokenizer
        self.compute_tokens = 0
        self.fold_buffers = FoldBuffers()  # sampling's folded weights, rewritten in place at every call

    def add_compute_tokens(self, count: int) -> None:
        self.compute_tokens += count

    @torch.no_grad()
    def sample(self, prompts, n, max_new_tokens, temperature):
        """``n`` samples per prompt through objlab's decode loop: each prompt forwarded once and
        its cache shared by its ``n`` samples, finished rows leave the batch, LoRA folded into
        copies of the weights, kept and rewritten at every call, where that is exact to float32
        (``peft_compat.folded_lora``); draws from the global RNG, which checkpoints capture, so a
        resumed run samples the same. Compute tokens count what was forwarded: each prompt once,
        every sampled token."""
        from objlab.lm.decode import decode_batch, eos_token_ids, left_padded

        encoded = [self.encoder.encode_prompt(prompt) for prompt in prompts]
        device = next(self.model.parameters()).device
        input_ids, attention = left_padded(encoded, self.tokenizer.pad_token_id, device)
        eos = eos_token_ids(self.model, self.tokenizer)
        self.model.eval()
        try:
            with folded_lora(self.model, buffers=self.fold_buffers):
                rows = decode_batch(self.model, input_ids, attention, max_new_tokens, eos, repeats=n, temperature=temperature)
        finally:
            self.model.train()
        self.add_compute_tokens(sum(map(len, encoded)) + sum(map(len, rows)))
        samples = [
            Sample(
                text=self.tokenizer.decode([t for t in row if t not in eos], skip_special_tokens=True),
                prompt_ids=tuple(encoded[index // n]),  # row r * n + k is prompt r's k-th decoding
                token_ids=tuple(row),  # exactly as drawn: the end-of-turn token only when it was sampled
                finished=bool(row) and row[-1] in eos,
            )
            for index, row in enumerate(rows)
        ]
        return [samples[index * n : (index + 1) * n] for index in range(len(prompts))]


class Trainer:
    """State of one run; ``run()`` is the loop. Split into methods only where the loop calls a
    step twice (the snapshot cut) or writes an output."""

    def __init__(self, request: TrainRequest, bundle: ModelBundle | None, board: Board) -> None:
        config = request.config
        self.request, self.config, self.board = request, config, board
        self.started = time.perf_counter()
        set_seed(request.seed)
        self.examples = load_examples(config.data)
        self.bundle = bundle or load_bundle(config.model)
        self.objective = registry.build(request.objective, config.objective_params(request.objective), request.seed)
        self.objective.bind(config)
        self.model = attach_adapter(self.bundle, request, self.objective)
        self.encoder = ChatEncoder(self.bundle.tokenizer, config.train.max_length)
        self.stream = TaskStream(self.examples, self.encoder, request.seed)
        self.plan: BudgetPlan = plan_budgets(self.stream, config.train.batch_size, request.budgets)
        self.head = LogitHead.from_model(
            causal_lm_of(self.model), vocab_limit=self.bundle.base_vocab_size, chunk=config.train.logits_chunk_tokens
        )
        train = config.train
        self.parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.parameters,
            lr=train.learning_rate,
            betas=(train.adam_beta1, train.adam_beta2),
            eps=train.adam_eps,
            weight_decay=train.weight_decay,
        )
        # Sequences sharing a prefix (a preference pair's prompt) run packed, the prefix once,
        # when the model's attention takes a block mask (train/batching.py, lm/masks.py).
        self.share_prefixes = supports_block_mask(causal_lm_of(self.model))
        self.context = LoopContext(self.model, self.encoder, self.bundle.tokenizer)
        self.counters = ckpt.LoopCounters()
        self.log: list[StepLog] = []
        self.resumed_from_step = 0

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> dict[int, AdapterManifest]:
        request, plan = self.request, self.plan
        self._resume()
        total_steps = plan.total_steps()
        line = self.board.line(f"train {request.objective} seed {request.seed}", total_steps)
        line.set(self.counters.step)
        if self.counters.step == 0:
            set_seed(request.seed)  # the same RNG state at step 0 whatever loading drew
        for step in range(self.counters.step, total_steps):
            start, stop = plan.step_positions(step)
            for budget in plan.cuts_in_step(step):
                if not is_complete(request.outputs[budget]):
                    self._snapshot_cut(step, start, plan.examples[budget], budget)
            self.log.append(self._step(step, start, stop))
            self._append_log_row(self.log[-1])
            fault_point("train.step")
            for budget in plan.ends_at_step(step):
                if not is_complete(request.outputs[budget]):
                    self._write_output(budget, self.log)
            if (step + 1) % self.config.train.checkpoint_every == 0 and step + 1 < total_steps:
                ckpt.save_checkpoint(request.work_dir, self.model, self.optimizer, self.counters, request.identity())
            line.advance(1, info=f"{self.counters.budget_tokens:,} tokens  loss {self.log[-1].loss:.4f}")
        line.close()
        ckpt.clear_checkpoints(request.work_dir)
        return {budget: read_manifest(path) for budget, path in request.outputs.items()}

    def _step(self, step: int, start: int, stop: int) -> StepLog:
        """One optimizer step over stream positions [start, stop); returns its log row."""
        config, objective = self.config, self.objective
        items = self.stream.items(start, stop)
        self.context.compute_tokens = 0
        prepared = prepare_step(objective, items, config.data.rejected, self.request.seed, self.context)
        evidence = {key: [entry.values.get(key) for entry in prepared] for key in objective.evidence_keys}
        batches = micro_batches(prepared, self.encoder, objective.roles, self.bundle.tokenizer.pad_token_id,
                                config.train.micro_batch_size, self.share_prefixes)
        lr = config.train.learning_rate * lr_factor(step, config.train.schedule, config.train.warmup_steps, self.plan.total_steps())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        keep_hidden = objective.reference == "distribution"
        loss_value, components, processed = 0.0, defaultdict(float), 0
        for batch in batches:
            reference = forward_reference(self.model, batch, self.head, keep_hidden) if objective.reference else None
            policy = forward_responses(self.model, batch, self.head, keep_hidden)
            output = objective.loss(batch, policy, reference)
            micro_loss = output.loss.item()
            self._require_finite("loss", micro_loss, step)
            output.loss.backward()
            loss_value += micro_loss
            for name, value in output.components.items():
                components[name] += value
            processed += batch.tokens * (2 if reference is not None else 1)
        max_norm = config.train.max_grad_norm if config.train.max_grad_norm is not None else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.parameters, max_norm))
        self._require_finite("gradient norm", grad_norm, step)
        self.optimizer.step()
        task_tokens = sum(item.task_tokens for item in items)
        counters = self.counters
        counters.step, counters.examples = step + 1, stop
        counters.budget_tokens += task_tokens
        counters.compute_tokens += processed + self.context.compute_tokens - task_tokens
        return StepLog(counters.step, counters.examples, counters.budget_tokens, counters.compute_tokens, lr, loss_value,
                       grad_norm, {name: components[name] for name in sorted(components)}, evidence)

    def _require_finite(self, what: str, value: float, step: int) -> None:
        """Stop at once, before the update, when ``value`` is NaN or infinite: a diverged run
        must not train on and report figures (no checkpoint or adapter holds the bad step)."""
        if not math.isfinite(value):
            request = self.request
            raise TrainingError(
                f"objective {request.objective!r} (seed {request.seed}): the {what} is {value} at step {step + 1}; "
                f"training stopped before that update. Lower train.learning_rate or set train.max_grad_norm, "
                f"or check the objective's parameters and the data."
            )

    def _snapshot_cut(self, step: int, start: int, stop: int, budget: int) -> None:
        """Take the step cut at ``budget``'s last example, save it, and rewind."""
        saved = ckpt.capture(self.model, self.optimizer, self.counters)
        row = self._step(step, start, stop)
        self._write_output(budget, self.log + [row])
        self.counters = ckpt.restore(self.model, self.optimizer, saved)

    # -- resume and outputs ----------------------------------------------------------------
    def _resume(self) -> None:
        work_dir = self.request.work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        found = ckpt.latest_intact(work_dir, on_skip=self.board.log)
        if found is None:
            self.log = []
            write_log(work_dir / FULL_LOG, [])
            return
        identity = found.identity
        if identity != self.request.identity():
            changed = sorted(key for key in identity if identity[key] != self.request.identity().get(key))
            raise StateError(
                f"{work_dir}: holds a checkpoint of a different run (differs in: {', '.join(changed)}); "
                "use a new output directory or delete it"
            )
        self.counters = ckpt.apply_checkpoint(found, self.model, self.optimizer)
        self.resumed_from_step = self.counters.step
        self.log = read_log(work_dir / FULL_LOG)[: self.counters.step]
        write_log(work_dir / FULL_LOG, self.log)
        self.board.log(f"resumed {self.request.objective} seed {self.request.seed} at step {self.counters.step}")

    def _append_log_row(self, row: StepLog) -> None:
        with (self.request.work_dir / FULL_LOG).open("a") as handle:
            handle.write(json.dumps(row.to_json(), sort_keys=True) + "\n")

    def _write_output(self, budget: int, log: list[dict]) -> None:
        write_adapter_output(self.request.outputs[budget], self.model, log, self._manifest(budget, log))

    def _manifest(self, budget: int, log: list[dict]) -> AdapterManifest:
        config, request, last = self.config, self.request, log[-1]
        snapshot = len(request.budgets) > 1 and budget != max(request.budgets)
        return AdapterManifest(**{
            "objective": request.objective,
            "objective_description": self.objective.description,
            "objective_params": self.objective.params.model_dump(mode="json", by_alias=True),
            "control_tokens": list(self.objective.control_tokens),
            "seed": request.seed,
            "budget": budget,
            "budget_tokens": last.budget_tokens,
            "compute_tokens": last.compute_tokens,
            "examples": last.examples,
            "steps": last.step,
            "final_loss": last.loss,
            # "snapshot": cut from a longer run at this budget; "own-run": the end of its own run.
            "mode": "snapshot" if snapshot else "own-run",
            "schedule": config.train.schedule,
            "config": config.model_dump(mode="json"),
            "config_fingerprint": config.fingerprint(),
            "training_fingerprint": config.training_fingerprint(request.objective),
            "model": config.model.name_or_path,
            "model_fingerprint": model_fingerprint(config.model, self.bundle.model),
            "data_source": config.data.source,
            "data_hash": records_hash(self.examples),
            "data_examples": len(self.examples),
            "truncated_examples": self.encoder.truncated,
            "device": str(self.bundle.device),
            "dtype": str(next(self.bundle.model.parameters()).dtype).removeprefix("torch."),
            "wall_time_s": round(time.perf_counter() - self.started, 3),  # this process's share when resumed
            "resumed_from_step": self.resumed_from_step,
            "peak_memory_bytes": peak_memory_bytes(self.bundle.device),
            "environment": environment(),
            "counters": asdict(self.counters),
            "rejected": describe_strategy(config.data.rejected) if self.objective.needs_preference else None,
            "objective_provenance": self.objective.provenance(),
            "evidence": summarize_evidence(log),
        })


def train(request: TrainRequest, bundle: ModelBundle | None = None, board: Board | None = None) -> dict[int, AdapterManifest]:
    """Train (or finish training) ``request``; returns the manifest of each budget's adapter.

    Already complete outputs are not retrained. Several budgets in one call need a
    budget-independent schedule (see config.TrainSettings).
    """
    if all(is_complete(path) for path in request.outputs.values()):
        return {budget: read_manifest(path) for budget, path in request.outputs.items()}
    if len(request.outputs) > 1 and not budget_independent(request.config.train.schedule):
        raise ValueError(
            f"schedule {request.config.train.schedule!r} depends on the budget: train each budget separately "
            "(the grid runner does this automatically)"
        )
    with board_or_quiet(board) as active:
        return Trainer(request, bundle, active).run()
