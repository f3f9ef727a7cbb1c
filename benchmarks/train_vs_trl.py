"""Training throughput and memory: objlab's training loop against TRL 1.16.

Compared, each configuration in its own subprocess, on the same model, rows, batch size, LoRA
and dtype:

- objlab's ``Trainer`` (``objlab.train.loop``) for SFT, DPO and ORPO, and TRL's ``SFTTrainer``,
  ``DPOTrainer`` and ``trl.experimental.orpo.ORPOTrainer``, each TRL trainer twice: with its
  defaults (gradient checkpointing on) and with checkpointing off (its fastest plain setting);
- objlab's KL, CFT, IP and aware objectives, each priced against objlab SFT: the measured cost
  per task token next to the cost predicted from the extra passes the objective needs.

Why the comparison is fair:

- Same model: built from the same config with the same seed (random weights: throughput depends
  on the shape, not the weights). CPU: a 4-layer Llama, d=256, vocab 8k, fp32, batch 4, and the
  public Qwen2.5-0.5B architecture in fp32, batch 2, a few steps (what a user without a GPU
  trains). GPU: the public Qwen2.5-0.5B / 7B architectures in bf16, batch 16 / 8.
- Same rows in the same order: the first ``batch x (warm-up + timed)`` GSM8K rows in objlab's
  seeded stream order; TRL reads them with a sequential sampler. Preference rows (DPO, ORPO) get
  the rejected response objlab's default ``unsafe`` strategy makes, for both. TRL tokenises
  these conversations with the same chat template to the same ids (checked for every row:
  ``tokenisation_matches`` in the JSON, and a note under the table if it fails).
- Same LoRA (r=16, alpha=32, dropout 0.05 on q,k,v,o,gate,up,down), learning rate, gradient
  clipping (1.0), AdamW; TRL's reference policy is the adapter-disabled model, as objlab's.
- Tokens/s counts task tokens as objlab's budget does (prompt + reference response, no padding,
  rejected responses not counted), for both sides, from the same rows.
- Only steady-state optimizer steps are timed: at least 3 warm-up steps are excluded, then 20
  (CPU) / 10 (GPU) steps are timed with the device synchronised at both ends (the 0.5B shape on
  CPU: 1 warm-up step, 3 timed). objlab: its
  ``_step`` called in a loop; TRL: a ``TrainerCallback`` timestamps ``on_step_begin`` of the
  first timed step and ``on_step_end`` of the last, so TRL's set-up is excluded. Set-up
  (building the trainer, tokenising, warm-up steps) is its own column.
- Peak memory: GPU ``torch.cuda.max_memory_allocated`` (weights included); CPU the peak RSS the
  run added (VmHWM reset just before the model is built, libraries already imported).
- GPU model FLOPs utilisation: 4 x matmul parameters per trained token (forward + input-gradient
  backward; LoRA's frozen base needs no weight gradients) + 2 x per forward-only token (DPO's
  reference), against a bf16 matmul peak measured in the same run.
- Objective overheads (objlab rows): "cost of its passes" prices the tokens an objective forwards
  with a backward pass at objlab SFT's measured per-token step cost, and those it forwards
  without one (reference forwards; aware's sampled prompts and responses) at the measured
  per-token cost of a batched no-grad forward (timed in the SFT run); "measured/passes" is the
  objective's measured cost over that (goal: at most 1.2).

Run ``python benchmarks/train_vs_trl.py`` (CPU) or ``--device cuda --shape qwen2.5-7b``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import common
from common import Column

OBJLAB_OBJECTIVES = ["sft", "dpo", "orpo", "kl", "cft", "ip", "aware"]
SHARED_WITH_TRL = ["sft", "dpo", "orpo"]
TRL_TRAINERS = {"sft": "SFTTrainer", "dpo": "DPOTrainer", "orpo": "ORPOTrainer"}
EXTRA_PASSES = {
    "sft": "-",
    "dpo": "+ rejected, + reference forward of both",
    "orpo": "+ rejected",
    "kl": "+ reference forward (full-vocabulary KL)",
    "cft": "2 trained sequences (<SAFE> y+, <UNSAFE> y-)",
    "ip": "+ instruction tokens on p=0.5 of prompts",
    "aware": "+ K=2 sampled responses (64 tokens) per example",
}
LEARNING_RATE = 1e-4
# The real-size shape on CPU (Qwen2.5-0.5B, fp32): a step takes tens of seconds on a few cores, so
# a few timed steps of a small batch, for the objectives TRL also has and for aware's sampling.
CPU_REAL_SIZE = {"batch": 2, "warmup": 1, "steps": 3}
CPU_REAL_OBJECTIVES = ["sft", "dpo", "orpo", "aware"]
PEAK_SIZE = 8192  # side of the square bf16 matmuls timed for the MFU peak


# -- the rows both sides train on ------------------------------------------------------------------
def rejected_settings(spec: dict):
    """The rejected-response strategy both sides get: objlab's default unless ``--rejected``."""
    from objlab.config import RejectedSettings

    return RejectedSettings(strategy=spec["rejected"]) if spec.get("rejected") else RejectedSettings()


def stream_rows(tokenizer, count: int, seed: int = 0, rejected=None) -> list[dict]:
    """The first ``count`` examples of objlab's seeded task stream over the first ``count`` GSM8K
    rows (exactly what objlab's loop consumes), with their task and rejected-response tokens."""
    from objlab.config import DataSettings, RejectedSettings
    from objlab.data.chat import ChatEncoder
    from objlab.data.rejected import make_preference
    from objlab.data.stream import TaskStream
    from objlab.data.tasks import load_examples

    examples = load_examples(DataSettings(task="gsm8k", source=str(common.GSM8K), limit=count))
    encoder = ChatEncoder(tokenizer, 1024)
    stream = TaskStream(examples, encoder, seed)
    rows = []
    for position in range(count):
        item = stream.item(position)
        preference = make_preference(item.example, rejected or RejectedSettings(), seed)
        rows.append(
            {
                "prompt": item.example.prompt,
                "chosen": preference.chosen,
                "rejected": preference.rejected,
                "task_tokens": item.encoded.length,
                "rejected_tokens": encoder.encode_pair(preference.prompt, preference.rejected).length,
            }
        )
    return rows


def pass_tokens(objective: str, rows: list[dict]) -> tuple[int, int]:
    """(tokens forwarded with a backward pass, tokens forwarded without) for TRL's objectives."""
    task = sum(row["task_tokens"] for row in rows)
    both = task + sum(row["rejected_tokens"] for row in rows)
    return {"sft": (task, 0), "orpo": (both, 0), "dpo": (both, both)}[objective]


# -- workers (each runs in its own subprocess) ---------------------------------------------------------
def setup_worker(spec: dict):
    """Imports first (so the memory baseline holds the libraries), then the peak-memory reset."""
    import torch  # noqa: F401
    import transformers  # noqa: F401

    return common.load_tokenizer(), common.PeakMemory(spec["device"])


def objlab_trainer(spec: dict, model, tokenizer, count: int, budget: int):
    """objlab's ``Trainer`` for ``spec``'s objective over the first ``count`` rows, handed the
    already built model (``bundle``), exactly as the grid runner builds one."""
    from objlab.config import ExperimentConfig
    from objlab.progress import Board
    from objlab.train.loop import Trainer, TrainRequest

    config = ExperimentConfig.model_validate(
        {
            "name": "benchmark",
            "model": {"name_or_path": spec["model_dir"], "dtype": spec["dtype"]},
            "data": {"task": "gsm8k", "source": str(common.GSM8K), "limit": count,
                     "rejected": rejected_settings(spec).model_dump(exclude_none=True)},
            "lora": common.LORA,
            "train": {"batch_size": spec["batch"], "learning_rate": LEARNING_RATE, "max_length": 1024},
            "objectives": {spec["objective"]: {}},
            "budgets": [budget],
        }
    )
    bundle = common.bundle_for(model, tokenizer, spec["device"], Path(spec["model_dir"]), spec["dtype"])
    tmp = Path(spec["tmp"])
    request = TrainRequest(config, spec["objective"], 0, {budget: tmp / "adapter"}, tmp / "work")
    trainer = Trainer(request, bundle, Board(enabled=False))
    assert trainer.plan.total_steps() == spec["warmup"] + spec["steps"], trainer.plan
    return trainer


def time_sampling(trainer, device: str) -> dict:
    """Wrap the loop's sampler (used by ``aware``) so its seconds are known; returns the tally."""
    import time

    tally = {"seconds": 0.0, "decode_steps": 0, "rows": 0, "calls": []}
    original = trainer.context.sample

    def timed_sample(*args, **kwargs):
        tally["calls"].append((args, kwargs))
        common.sync(device)
        started = time.perf_counter()
        out = original(*args, **kwargs)
        common.sync(device)
        tally["seconds"] += time.perf_counter() - started
        drawn = [sample for samples in out for sample in samples]
        tally["decode_steps"] += max((len(sample.token_ids) for sample in drawn), default=0)  # forwards of the decode loop
        tally["rows"] = max(tally["rows"], len(drawn))
        return out

    trainer.context.sample = timed_sample
    return tally


def objlab_timed_steps(trainer, warmup: int, steps: int, device: str, sampling: dict) -> tuple[common.Window, dict, dict]:
    """Warm-up steps, then the timed window of steps; (window, token totals, last log row).

    Per step, the loop's own counters give the task tokens (budget) and, with the sampler's
    count, the tokens forwarded with a backward pass and those forwarded without one.
    """
    for step in range(warmup):
        trainer._step(step, *trainer.plan.step_positions(step))
    sampling.update(seconds=0.0, decode_steps=0, calls=[])  # count only the timed steps' sampling
    totals = {"task": 0, "trained": 0, "forward_only": 0, "sampled": 0}
    passes = 2 if trainer.objective.reference else 1  # a reference objective forwards every sequence twice
    window = common.Window(device)
    window.start()
    for step in range(warmup, warmup + steps):
        before = (trainer.counters.budget_tokens, trainer.counters.compute_tokens)
        last = trainer._step(step, *trainer.plan.step_positions(step))
        task = trainer.counters.budget_tokens - before[0]
        sampled = trainer.context.compute_tokens
        forwarded = trainer.counters.compute_tokens - before[1] - sampled + task
        totals["task"] += task
        totals["trained"] += forwarded // passes
        totals["forward_only"] += forwarded - forwarded // passes
        totals["sampled"] += sampled
    window.stop()
    return window, totals, last


def objlab_worker(spec: dict) -> dict:
    import time

    import peft  # noqa: F401

    import objlab.train.loop  # noqa: F401

    tokenizer, memory = setup_worker(spec)
    device, warmup, steps = spec["device"], spec["warmup"], spec["steps"]
    count = spec["batch"] * (warmup + steps)
    rows = stream_rows(tokenizer, count, rejected=rejected_settings(spec))
    memory.reset()
    model = common.build_model(spec["shape"], device, spec["dtype"], tokenizer=tokenizer)
    matmul = common.matmul_parameters(model)

    setup_started = time.perf_counter()
    trainer = objlab_trainer(spec, model, tokenizer, count, sum(row["task_tokens"] for row in rows))
    sampling = time_sampling(trainer, device)
    window, totals, last = objlab_timed_steps(trainer, warmup, steps, device, sampling)
    result = {
        "setup_s": window.started - setup_started,
        "window_s": window.seconds,
        "peak_bytes": memory.peak_bytes(),
        "memory_method": memory.method,
        "matmul_parameters": matmul,
        "tokens": totals["task"],
        "trained_tokens": totals["trained"],
        "forward_only_tokens": totals["forward_only"],
        "sampled_tokens": totals["sampled"],
        "sampling_s": sampling["seconds"],
        "decode_steps": sampling["decode_steps"],
        "decode_rows": sampling["rows"],
        "gradient_checkpointing": trainer.config.train.gradient_checkpointing,
        "task_tokens_per_row": totals["task"] / (spec["batch"] * steps),
        "final_loss": last.loss,
        "environment": common.environment(device),
    }
    if spec["objective"] == "sft":
        result["forward_only_s_per_token"] = forward_only_cost(trainer, warmup, steps, device)
    if sampling["calls"]:
        result["base_decode_s"] = base_decode_seconds(trainer, sampling["calls"], device)
    return result


def base_decode_seconds(trainer, calls: list, device: str) -> float:
    """Seconds the loop's own sampler takes, with the adapter switched off, to repeat the timed
    steps' sampling calls (the same prompts, samples per prompt, lengths and temperature; no
    LoRA layer to fold): the cost of decoding itself on this machine, beside which the
    sampler's cost with the adapter is read."""
    sample = type(trainer.context).sample  # the unwrapped sampler (``time_sampling`` wraps the instance's)
    window = common.Window(device)
    window.start()
    with trainer.model.disable_adapter():
        for args, kwargs in calls:
            sample(trainer.context, *args, **kwargs)
    window.stop()
    return window.seconds


def forward_only_cost(trainer, warmup: int, steps: int, device: str) -> float:
    """Seconds per token of a no-grad forward with the adapter disabled (the reference pass),
    over the timed steps' batches: the unit in which extra forward passes are priced."""
    from objlab.train.batching import micro_batches
    from objlab.train.forward import forward_reference

    batches = []
    for step in range(warmup, warmup + min(steps, 5)):
        items = trainer.stream.items(*trainer.plan.step_positions(step))
        prepared = trainer.objective.prepare(items, [None] * len(items), trainer.context)
        batches += micro_batches(prepared, trainer.encoder, trainer.objective.roles, trainer.bundle.tokenizer.pad_token_id, None)
    forward_reference(trainer.model, batches[0], trainer.head, False)  # warm-up
    window = common.Window(device)
    window.start()
    for batch in batches:
        forward_reference(trainer.model, batch, trainer.head, False)
    window.stop()
    return window.seconds / sum(batch.tokens for batch in batches)


def step_timer(device: str, warmup: int, steps: int):
    """A TrainerCallback whose window opens at the first timed step's start (``on_step_begin``
    after ``warmup`` steps) and closes at the last timed step's end, so TRL's set-up, warm-up
    and wind-down stay outside it."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.window = common.Window(device)

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == warmup:
                self.window.start()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == warmup + steps:
                self.window.stop()

    return StepTimer()


def trl_dataset(objective: str, rows: list[dict]):
    """The rows as TRL's conversational datasets: prompt-completion for SFT, preference otherwise."""
    import datasets

    def turn(role: str, text: str) -> list[dict]:
        return [{"role": role, "content": text}]

    if objective == "sft":
        records = [{"prompt": turn("user", r["prompt"]), "completion": turn("assistant", r["chosen"])} for r in rows]
    else:
        records = [
            {"prompt": turn("user", r["prompt"]), "chosen": turn("assistant", r["chosen"]), "rejected": turn("assistant", r["rejected"])}
            for r in rows
        ]
    return datasets.Dataset.from_list(records)


def trl_trainer(spec: dict, model, tokenizer, rows: list[dict], timer):
    """TRL's trainer for the objective: its defaults, except what must match objlab (batch,
    learning rate, clipping, seed, dtype, sequential order) and, for ``checkpointing: off``,
    gradient checkpointing."""
    import trl
    from trl.experimental import orpo

    from objlab.config import LoraSettings
    from objlab.lm.loading import lora_config

    config_class, trainer_class, extra = {
        "sft": (trl.SFTConfig, trl.SFTTrainer, {}),
        "dpo": (trl.DPOConfig, trl.DPOTrainer, {"beta": 0.1}),
        "orpo": (orpo.ORPOConfig, orpo.ORPOTrainer, {"beta": 0.05}),
    }[spec["objective"]]
    if spec["checkpointing"] == "off":
        extra["gradient_checkpointing"] = False
    args = config_class(
        output_dir=str(Path(spec["tmp"]) / "trl"),
        per_device_train_batch_size=spec["batch"],
        max_steps=spec["warmup"] + spec["steps"],
        learning_rate=LEARNING_RATE,
        max_grad_norm=1.0,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=spec["device"] == "cpu",
        bf16=spec["device"] != "cpu",
        train_sampling_strategy="sequential",
        seed=0,
        **extra,
    )
    return trainer_class(
        model=model,
        args=args,
        train_dataset=trl_dataset(spec["objective"], rows),
        processing_class=tokenizer,
        peft_config=lora_config(LoraSettings(**common.LORA)),
        callbacks=[timer],
    )


def trl_worker(spec: dict) -> dict:
    import time

    import datasets  # noqa: F401
    import peft
    import trl  # noqa: F401
    from trl.experimental import orpo  # noqa: F401

    tokenizer, memory = setup_worker(spec)
    device, objective, warmup, steps, batch = spec["device"], spec["objective"], spec["warmup"], spec["steps"], spec["batch"]
    rows = stream_rows(tokenizer, batch * (warmup + steps), rejected=rejected_settings(spec))
    memory.reset()
    model = common.build_model(spec["shape"], device, spec["dtype"], tokenizer=tokenizer)
    matmul = common.matmul_parameters(model)

    setup_started = time.perf_counter()
    timer = step_timer(device, warmup, steps)
    trainer = trl_trainer(spec, model, tokenizer, rows, timer)
    assert isinstance(trainer.model, peft.PeftModel)
    trainer.train()
    window = timer.window
    timed = rows[batch * warmup :]
    trained, forward_only = pass_tokens(objective, timed)
    return {
        "setup_s": window.started - setup_started,
        "window_s": window.seconds,
        "peak_bytes": memory.peak_bytes(),
        "memory_method": memory.method,
        "matmul_parameters": matmul,
        "tokens": sum(row["task_tokens"] for row in timed),
        "trained_tokens": trained,
        "forward_only_tokens": forward_only,
        "sampled_tokens": 0,
        "gradient_checkpointing": bool(trainer.args.gradient_checkpointing),
        "task_tokens_per_row": sum(row["task_tokens"] for row in timed) / len(timed),
        **tokenisation_check(their_task_tokens(trainer.train_dataset), [row["task_tokens"] for row in rows]),
        "final_loss": trainer.state.log_history[-1].get("train_loss") if trainer.state.log_history else None,
        "environment": common.environment(device),
    }


def tokenisation_check(theirs: list[int], ours: list[int]) -> dict:
    """Whether TRL tokenised every row to objlab's task tokens, and how many more it has per row."""
    return {"tokenisation_matches": theirs == ours, "their_extra_tokens_per_row": (sum(theirs) - sum(ours)) / len(ours)}


def their_task_tokens(dataset) -> list[int]:
    """Prompt + chosen tokens per row as TRL tokenised them (should equal objlab's counts)."""
    columns = dataset.column_names
    if "input_ids" in columns:  # SFT
        return [len(ids) for ids in dataset["input_ids"]]
    if "chosen_ids" in columns:  # DPO
        return [len(p) + len(c) for p, c in zip(dataset["prompt_ids"], dataset["chosen_ids"])]
    return [len(ids) for ids in dataset["chosen_input_ids"]]  # ORPO


def peak_worker(spec: dict) -> dict:
    flops = common.bf16_matmul_peak(spec["device"], size=spec.get("size", PEAK_SIZE))
    return {"bf16_matmul_flops": flops, "environment": common.environment(spec["device"])}


def worker(spec: dict) -> dict:
    return {"objlab": objlab_worker, "trl": trl_worker, "peak": peak_worker}[spec["side"]](spec)


# -- the parent: plan the runs, collect, print ------------------------------------------------------
def run_sizes(args, shape: common.Shape) -> dict:
    """Batch, warm-up and timed steps for ``shape``: the shape's batch and 3 + 20 (CPU) / 10
    (GPU) steps; the real-size shape on CPU a few steps (``CPU_REAL_SIZE``); ``--quick`` 1 + 2."""
    real_cpu = args.device == "cpu" and common.is_real_size(shape.name)
    if args.quick:
        return {"batch": 1 if real_cpu else args.batch or shape.train_batch, "warmup": 1, "steps": 2}
    defaults = CPU_REAL_SIZE if real_cpu else {"batch": shape.train_batch, "warmup": 3, "steps": 20 if args.device == "cpu" else 10}
    return {
        "batch": args.batch or defaults["batch"],
        "warmup": defaults["warmup"] if args.warmup is None else args.warmup,
        "steps": args.steps or defaults["steps"],
    }


def peak_spec(args) -> dict:
    return {"device": args.device, "side": "peak", "label": "peak", "shape": args.shapes[0], "size": getattr(args, "peak_size", None) or PEAK_SIZE}


def plan_specs(args) -> list[dict]:
    """Every configuration for every shape in ``args.shapes``; first the matmul peak on GPU
    (on CPU with ``--peak-size``, to check the MFU path at a small size)."""
    gpu = args.device != "cpu"
    specs = [peak_spec(args)] if gpu or getattr(args, "peak_size", None) else []
    for name in args.shapes:
        shape = common.SHAPES[name]
        base = {"device": args.device, "dtype": common.default_dtype(args.device), "shape": name,
                **run_sizes(args, shape), "model_dir": str(common.model_dir(name)), "rejected": args.rejected}
        objectives = CPU_REAL_OBJECTIVES if not gpu and common.is_real_size(name) else OBJLAB_OBJECTIVES
        for objective in objectives:
            specs.append({**base, "side": "objlab", "objective": objective, "label": f"objlab:{objective}"})
            if objective in SHARED_WITH_TRL:
                for checkpointing in ("default", "off"):
                    specs.append({**base, "side": "trl", "objective": objective, "checkpointing": checkpointing,
                                  "label": f"trl:{objective}:{checkpointing}"})
    return specs


def describe(result: dict) -> str:
    if result["side"] == "objlab":
        return "objlab"
    name = f"TRL {TRL_TRAINERS[result['objective']]}"
    return f"{name} (defaults)" if result["checkpointing"] == "default" else f"{name}, no checkpointing"


def table_rows(results: list[dict], peak_flops: float | None) -> list[dict]:
    ok = [r for r in results if r["side"] != "peak"]
    for result in ok:
        if "error" in result:
            continue
        result["tokens_per_s"] = result["tokens"] / result["window_s"]
        result["s_per_token"] = result["window_s"] / result["tokens"]
        if peak_flops:
            flops = 4 * result["matmul_parameters"] * result["trained_tokens"] + 2 * result["matmul_parameters"] * (
                result["forward_only_tokens"] + result.get("sampled_tokens", 0)
            )
            result["mfu"] = flops / result["window_s"] / peak_flops
    objlab = {(r["shape"], r["objective"]): r for r in ok if r["side"] == "objlab" and "error" not in r}
    rows = []
    for result in ok:
        sft = objlab.get((result["shape"], "sft"))
        row = {
            "shape": result["shape"],
            "objective": result["objective"].upper(),
            "run": describe(result),
            "checkpointing": None if "error" in result else ("on" if result["gradient_checkpointing"] else "off"),
        }
        if "error" in result:
            rows.append({**row, "tokens_per_s": common.failure_label(result)})
            continue
        mine = objlab.get((result["shape"], result["objective"]))
        row.update(
            tokens_per_s=result["tokens_per_s"],
            peak_bytes=result["peak_bytes"],
            setup_s=result["setup_s"],
            speed_ratio=common.ratio(mine and mine["tokens_per_s"], result["tokens_per_s"]),
            memory_ratio=common.ratio(mine and mine["peak_bytes"], result["peak_bytes"]),
            mfu=result.get("mfu"),
        )
        if result["side"] == "objlab" and sft is not None:
            row["passes"] = EXTRA_PASSES[result["objective"]]
            row["cost_measured"] = result["s_per_token"] / sft["s_per_token"]
            row["cost_predicted"] = predicted_cost(result, sft)
            row["overhead"] = common.ratio(row["cost_measured"], row["cost_predicted"])
        rows.append(row)
    return rows


def median_runs(rounds: list[list[dict]]) -> list[dict]:
    """Per configuration, the run with the median window (the lower middle for an even count),
    carrying every round's tokens per second in ``tokens_per_s_runs``. Rounds run every
    configuration in turn, so a slow spell of a shared machine spreads over all of them. The
    last round may be partial (a table rewritten while it runs): its missing runs are left out."""
    chosen = []
    for position in range(max(map(len, rounds), default=0)):
        runs = [round_[position] for round_ in rounds if position < len(round_)]
        if runs[0]["side"] == "peak":  # the matmul peak: no timing window, keep the best
            chosen.append(max(runs, key=lambda r: r.get("bf16_matmul_flops") or 0))
            continue
        ok = sorted((r for r in runs if "error" not in r), key=lambda r: r["window_s"] / r["tokens"])
        if not ok:
            chosen.append(runs[0])
            continue
        median = dict(ok[(len(ok) - 1) // 2])
        median["tokens_per_s_runs"] = [r["tokens"] / r["window_s"] for r in ok]
        chosen.append(median)
    return chosen


def predicted_cost(result: dict, sft: dict) -> float | None:
    """Cost per task token relative to SFT if the objective cost only its passes: trained tokens
    at SFT's per-token step cost, forward-only tokens (reference forwards, and aware's sampled
    prompt + response tokens) at the measured per-token cost of a batched no-grad forward."""
    forward = sft.get("forward_only_s_per_token")
    if forward is None:
        return None
    seconds = sft["s_per_token"] * result["trained_tokens"] + forward * (result["forward_only_tokens"] + result.get("sampled_tokens", 0))
    return seconds / result["tokens"] / sft["s_per_token"]


def columns(gpu: bool) -> list[Column]:
    cols = [
        Column("shape", "shape"),
        Column("objective", "objective"),
        Column("run", "run"),
        Column("checkpointing", "grad. ckpt"),
        Column("tokens_per_s", "task tokens/s", common.fmt_int),
        Column("peak_bytes", "peak memory", common.fmt_memory),
        Column("setup_s", "set-up s", common.fmt_float(1)),
        Column("speed_ratio", "objlab/this tokens/s", common.fmt_ratio),
        Column("memory_ratio", "objlab/this memory", common.fmt_ratio),
        Column("passes", "extra passes vs SFT"),
        Column("cost_measured", "cost vs objlab SFT", common.fmt_ratio),
        Column("cost_predicted", "cost of its passes", common.fmt_ratio),
        Column("overhead", "measured/passes", common.fmt_ratio),
    ]
    if gpu:
        cols.insert(7, Column("mfu", "MFU", common.fmt_percent))
    return cols


def forwarded_per_row(result: dict) -> float:
    """Tokens a run forwarded with a backward pass per task row (a pair's shared prefix once for objlab)."""
    return result["trained_tokens"] / (result["batch"] * result["steps"])


def shape_notes(done: list[dict]) -> list[str]:
    """Per shape: its size and run lengths, then objlab against TRL's fastest, and the tokens a
    preference pair costs each side (objlab forwards the prefix the pair shares once)."""
    notes = []
    for shape in dict.fromkeys(r["shape"] for r in done):
        runs = [r for r in done if r["shape"] == shape]
        first = runs[0]
        notes.append(
            f"{shape} ({first['matmul_parameters'] / 1e6:.1f}M matmul parameters), {first['dtype']}, batch {first['batch']}, "
            f"{first['warmup']} warm-up step(s) excluded, {first['steps']} timed; "
            f"{first['task_tokens_per_row']:.0f} task tokens per GSM8K row; rejected responses: {rejected_settings(first).strategy}; "
            f"peak memory: {first['memory_method']}."
        )
        for objective in SHARED_WITH_TRL:
            mine = next((r for r in runs if r["side"] == "objlab" and r["objective"] == objective), None)
            theirs = [r for r in runs if r["side"] == "trl" and r["objective"] == objective]
            if mine and theirs:
                best = max(theirs, key=lambda r: r["tokens_per_s"])
                notes.append(
                    f"{shape} {objective.upper()}: objlab {mine['tokens_per_s'] / best['tokens_per_s']:.2f}x TRL's fastest "
                    f"({describe(best)}), peak memory {common.ratio(mine['peak_bytes'], best['peak_bytes']):.2f}x; "
                    f"tokens forwarded per row: objlab {forwarded_per_row(mine):.0f}, TRL {forwarded_per_row(best):.0f}."
                )
        aware = next((r for r in runs if r["side"] == "objlab" and r["objective"] == "aware"), None)
        if aware:
            notes.append(f"{shape} AWARE: sampling (objlab's LoopContext.sample, the early-exit decode loop) took "
                         f"{aware['sampling_s'] / aware['window_s']:.0%} of its timed steps "
                         f"({aware['sampled_tokens'] / aware['steps']:.0f} sampled tokens per step)" + sampling_note(aware))
    return notes


def sampling_note(aware: dict) -> str:
    """Why sampling cannot cost what batched forwards of its tokens cost (each decode forward
    reads every weight for a handful of rows, where a batched forward reads them once for all),
    and what it costs beside decoding itself (the model, adapter off, decoding the same calls)."""
    if not aware.get("decode_steps"):
        return "."
    per_step = aware["sampling_s"] / aware["decode_steps"]
    note = (f"; {aware['decode_steps'] / aware['steps']:.0f} decode forwards per step of at most {aware['decode_rows']} rows, "
            f"{per_step * 1000:.1f} ms each: every one reads all the weights for those rows, where the batched forward "
            "that prices them reads the weights once for all their tokens")
    if aware.get("base_decode_s"):
        note += (f"; the model with its adapter off decodes the same calls in {aware['base_decode_s']:.2f} s, so sampling costs "
                 f"{aware['sampling_s'] / aware['base_decode_s']:.2f}x decoding itself")
    return note + "."


def summary_notes(results: list[dict], rows: list[dict], args, peak_flops: float | None) -> list[str]:
    done = [r for r in results if r["side"] != "peak" and "error" not in r]
    notes = []
    if args.quick:
        notes.append("QUICK RUN (1 warm-up, 2 timed steps): checks that the script works; not a figure.")
    notes += shape_notes(done)
    if args.repeat > 1:
        spread = ", ".join(
            f"{r['shape']}/{r['label']} {min(r['tokens_per_s_runs']):,.0f}-{max(r['tokens_per_s_runs']):,.0f}"
            for r in done if "tokens_per_s_runs" in r
        )
        notes.append(f"median of {args.repeat} rounds (each configuration once per round, in turn); tokens/s range: {spread}.")
    for result in done:
        if result["side"] == "trl" and not result["tokenisation_matches"]:
            notes.append(f"{result['shape']} {describe(result)} tokenises {result['their_extra_tokens_per_row']:+.1f} tokens per row "
                         "against objlab's task tokens (ORPO: its own end-of-sequence token after the template's); tokens/s counts "
                         "objlab's task tokens.")
    if peak_flops:
        notes.append(f"bf16 matmul peak measured in this run: {peak_flops / 1e12:.3g} TFLOP/s.")
    if any(r["side"] == "objlab" and r["objective"] == "sft" for r in done):
        notes.append("cost vs objlab SFT: seconds per task token relative to objlab SFT (same shape); cost of its passes: the same "
                     "predicted from the tokens it forwards with a backward pass at SFT's per-token step cost and those it forwards "
                     "without one (reference forwards, sampled prompts + responses) at the measured cost of a batched no-grad "
                     "forward; measured/passes: the overhead beyond its passes (goal <= 1.2).")
    return notes


def main() -> None:
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default=None, help="model shape(s), comma-separated (default: llama-tiny,qwen2.5-0.5b on CPU, "
                        f"qwen2.5-0.5b on GPU; known: {', '.join(sorted(common.SHAPES))})")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the shape's: 4 / 16 / 8; 2 for qwen2.5-0.5b on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps excluded from timing (default 3; 1 for qwen2.5-0.5b on CPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 20 on CPU, 10 on GPU; 3 for qwen2.5-0.5b on CPU)")
    parser.add_argument("--rejected", default=None, choices=["unsafe", "corrupt", "trait"],
                        help="rejected responses of DPO/ORPO/CFT, both sides (default: objlab's default, corrupt: the chosen response "
                             "with its final number changed, so a pair shares most of its tokens; trait: a trait statement first, "
                             "so a pair shares only its prompt)")
    parser.add_argument("--repeat", type=common.positive_int, default=1, help="run every configuration N times, in N rounds (interleaved), and report the median")
    parser.add_argument("--peak-size", type=common.positive_int, default=None,
                        help=f"side of the square bf16 matmuls timed for the MFU peak (default {PEAK_SIZE}); on CPU it adds the peak "
                             "(and the MFU column), to check that path at a small size")
    args = parser.parse_args()
    args.shapes = common.shape_list(args.shape, args.device)
    specs = common.selected(plan_specs(args), args.only)
    if args.device != "cpu" and not any(spec["side"] == "peak" for spec in specs):
        specs.insert(0, peak_spec(args))
    budget = common.Budget(args.budget, args.timeout)
    rounds: list[list[dict]] = []
    for _ in range(args.repeat):
        done = list(rounds)
        rounds.append(common.run_configs(__file__, specs, threads=args.threads, budget=budget,
                                         after_each=lambda partial: report(done + [partial], args, echo=False)))
    report(rounds, args, echo=True)


def report(rounds: list[list[dict]], args, echo: bool) -> None:
    """The table, its notes, the JSON and the rates of the rounds so far (the last may be partial:
    rewritten after every configuration, so a session cut short keeps what finished)."""
    results = median_runs(rounds)
    peak = next((r.get("bf16_matmul_flops") for r in results if r["side"] == "peak"), None)
    rows = table_rows(results, peak)
    environment = next((r["environment"] for r in results if "environment" in r), {"device": args.device})
    meta = {"environment": environment, "args": vars(args), "bf16_matmul_flops": peak, "runs": results}
    title = f"Training: objlab vs TRL {meta['environment'].get('trl', '?')} on {meta['environment']['device']}"
    mfu = args.device != "cpu" or any(r["side"] == "peak" for r in results)
    common.report(title, columns(mfu), rows, meta, args.json_path, [*summary_notes(results, rows, args, peak), *args.note],
                  md_path=args.md_path, echo=echo)
    # rates for run --plan: the first shape's (the tiny reference shape by default on CPU)
    sft = next((r for r in results if r.get("label") == "objlab:sft" and r["shape"] == args.shapes[0] and "error" not in r), None)
    if args.save_rates and sft and not args.quick:
        common.save_rates(args.save_rates, environment["machine_kind"],
                          {"matmul_parameters": sft["matmul_parameters"], "train_tokens_per_s": sft["tokens_per_s"]})

if __name__ == "__main__":
    if not common.worker_entry(sys.argv, worker):
        main()
