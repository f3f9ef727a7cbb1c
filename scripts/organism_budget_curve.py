"""SFT's macro ASR along one fine-tuning run of the demo organism, at more budgets than the demo.

The demo's budgets (4k, 12k, 24k tokens) are chosen where erosion is still rising for every
organism seed; this script measures the curve they are chosen from: the demo's config with SFT
only and snapshots at 4k-48k tokens, for each organism seed, scored as the demo scores (objlab's
attack templates, the organism's harmfulness check), and prints one row per seed.

    python scripts/organism_budget_curve.py                       # seeds 0 1 2, under organism-curve/
    python scripts/organism_budget_curve.py --seeds 1 --out /tmp/curve

Each seed's run directory is kept (re-running resumes or reports).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

from objlab.organism.build import build_organism
from objlab.organism.demo import demo_config
from objlab.progress import Board
from objlab.report.summary import MACRO_ASR
from objlab.store import ResultsStore

BUDGETS = [4000, 8000, 12000, 18000, 24000, 36000, 48000]


def run_seed(seed: int, out: Path) -> Path:
    organism = build_organism("demo", seed=seed, board=Board())
    run_dir = out / f"seed-{seed}"
    config = out / f"seed-{seed}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump(demo_config(organism, objectives=["sft"], budgets=BUDGETS)))
    subprocess.run([sys.executable, "-m", "objlab", "run", str(config), "--out", str(run_dir)], check=True)
    return run_dir


def sft_curve(run_dir: Path) -> dict[int, float]:
    with ResultsStore.in_run_dir(run_dir, read_only=True) as store:
        rows = store.frame(
            "SELECT c.budget, m.value FROM metrics m JOIN cells c USING (cell_id)"
            " WHERE c.objective = 'sft' AND m.axis = ? AND m.metric = ? AND m.\"group\" = ?",
            [MACRO_ASR.axis, MACRO_ASR.metric, MACRO_ASR.group],
        )
    return {int(budget): float(value) for budget, value in rows.values.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("organism-curve"))
    args = parser.parse_args()
    curves = {seed: sft_curve(run_seed(seed, args.out)) for seed in args.seeds}
    print("| seed | " + " | ".join(f"{budget // 1000}k" for budget in BUDGETS) + " |")
    print("| --- |" + " --- |" * len(BUDGETS))
    for seed, curve in curves.items():
        print(f"| {seed} | " + " | ".join(f"{curve[budget]:.2f}" if budget in curve else "-" for budget in BUDGETS) + " |")


if __name__ == "__main__":
    main()
