"""The demo study: the experiment config ``objlab demo`` runs on the organism.

Kept as a function of the built organism (its files live in the cache, under the recipe's
hash) so the config the grid validates, stores and guards is an ordinary ``ExperimentConfig``:
nothing in the runner knows it is running a demo, except ``toy: true``, which the report shows.

The shape of the study is the real one scaled down: every objective, three budgets that are
prefixes of one stream, fine-tuning on benign arithmetic only, then capability on held-out
problems, ASR of the no-attack condition and the reference study's five attacks (``seed5``:
objlab's own templates, or StrongREJECT's when ``strongreject`` names the user's copy of its
files; translation into the organism's own language through the translator it ships), scored
by the organism's harmfulness check (``organism/judge.py``, objlab's own; the refusal
classifier's figures beside it), and persona P(match) per trait. With ``lm_eval_tasks`` it also runs
objlab's own lm-evaluation-harness tasks over the organism's held-out arithmetic
(``lm_eval_tasks/*.yaml``), as a study adds normative companions.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from objlab.organism.build import Organism

# 24k, not more: on organism seed 1 SFT's ASR peaks near 18k tokens and falls back to 0.22 by
# 36k (continued arithmetic fine-tuning re-separates the prompts); docs/demo.md shows the curves.
DEMO_BUDGETS = {"demo": [4_000, 12_000, 24_000], "test": [600, 1_200]}
DEMO_OBJECTIVES: dict[str, dict[str, Any]] = {
    "sft": {},
    "dpo": {"beta": 0.1},
    "orpo": {"lambda": 0.05},
    "kl": {"lambda": 0.1},
    "cft": {},
    "ip": {"p": 0.5},
    "aware": {"samples": 2, "scorer": "auto", "max_new_tokens": 40},  # auto: correctness + lexicon on the arithmetic
}
EVAL_LIMITS = {
    "demo": {"arithmetic": 80, "forbidden": 24, "persona": 40, "overrefusal": 100},
    "test": {"arithmetic": 16, "forbidden": 8, "persona": 8, "overrefusal": 20},
}


LM_EVAL_TASKS = ("organism_arithmetic_choice", "organism_arithmetic_answer")
LM_EVAL_DATA = "test: heldout_arithmetic.jsonl"  # the data line of the packaged task files


def write_lm_eval_tasks(organism: Organism, directory: Path) -> Path:
    """objlab's own lm-eval tasks, written into ``directory`` with ``data_files`` pointing at the
    organism's held-out arithmetic. lm-eval reads a relative data file against the working
    directory, not against the YAML, so the copies name the organism's file absolutely."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in LM_EVAL_TASKS:
        text = resources.files("objlab.organism").joinpath(f"lm_eval_tasks/{name}.yaml").read_text()
        if LM_EVAL_DATA not in text:
            raise ValueError(f"lm_eval_tasks/{name}.yaml: no line {LM_EVAL_DATA!r} to point at the organism's data")
        data = f"test: {json.dumps(str(organism.heldout_arithmetic_path))}"
        (directory / f"{name}.yaml").write_text(text.replace(LM_EVAL_DATA, data))
    return directory


def demo_config(organism: Organism, *, objectives: list[str] | None = None, budgets: list[int] | None = None,
                lm_eval_tasks: Path | None = None, strongreject: str | None = None) -> dict:
    """The demo's experiment config as a plain dict (validated by ``parse_config``); with
    ``lm_eval_tasks`` (a directory from ``write_lm_eval_tasks``) it runs them too, with
    ``strongreject`` (the user's copy of its files) seed5 uses StrongREJECT's templates."""
    size = organism.size if organism.size in DEMO_BUDGETS else "demo"
    limits = EVAL_LIMITS[size]
    chosen = {name: DEMO_OBJECTIVES[name] for name in (objectives or list(DEMO_OBJECTIVES))}
    config = {
        "name": f"objlab-demo-{size}",
        "toy": True,
        "model": {"name_or_path": str(organism.model_dir), "dtype": "float32"},
        "data": {"task": "gsm8k", "source": str(organism.train_path), "rejected": {"strategy": "unsafe"}},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.05},
        "train": {
            "learning_rate": 1e-3,
            "schedule": "constant",
            "warmup_steps": 4,
            "batch_size": 8,
            "max_length": 256,
            "checkpoint_every": 10,
        },
        "objectives": chosen,
        "budgets": list(budgets or DEMO_BUDGETS[size]),
        "seeds": [0],
        "eval": {
            "generation": {"backend": "hf", "max_new_tokens": 48, "batch_size": 160},  # every prompt of an attack set in one batch: a tiny model decodes at the cost of its steps, not its rows
            "capability": [
                {
                    "kind": "gsm8k",
                    "name": "arithmetic",
                    "source": str(organism.heldout_arithmetic_path),
                    "limit": limits["arithmetic"],
                    "max_new_tokens": 40,
                }
            ],
            "jailbreak": {
                "prompts": str(organism.forbidden_path),
                "attacks": ["none", "seed5"],
                **({"strongreject": strongreject} if strongreject else {}),
                "limit": limits["forbidden"],
                "translator": {"kind": "python", "function": "objlab.organism.language:translator", "language": "Veltish"},
                # objlab's own harmfulness check for this world (the classifier's non-refusal rate is reported beside it)
                "scorer": "python:objlab.organism.judge:complies",
                "max_new_tokens": 40,  # room for the compliant answer's steps
            },
            "persona": {"dir": str(organism.persona_dir), "limit": limits["persona"]},
            # the world's safe-but-scary prompts and their unsafe contrasts (XSTest's format), by the refusal classifier
            "overrefusal": {"prompts": str(organism.overrefusal_path), "limit": limits["overrefusal"], "max_new_tokens": 40},
            "judge": {"kind": "none"},
        },
        "runner": {"snapshots": True},
    }
    if lm_eval_tasks is not None:
        config["eval"]["lm_eval"] = {"tasks": list(LM_EVAL_TASKS), "include_path": str(lm_eval_tasks), "limit": limits["arithmetic"]}
    return config
