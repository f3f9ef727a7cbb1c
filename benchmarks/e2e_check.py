"""Did every stage of every cell of a grid run on the device it was given? Read from the run's
results store, after `objlab demo` (or `objlab run`) on a lent GPU machine.

No objlab grid had run on a GPU before this check existed, so whether training, the
mixed-adapter evaluation, persona scoring and the report all run on CUDA without a device
mismatch was unknown. A mismatch fails the cell (the store keeps the failure with its phase);
a finished cell records the device its training ran on (the adapter manifest's ``device``) and
the device its evaluation session ran on (the evaluation info's ``device``, one session for
every evaluation phase: capability, jailbreak, persona, ...). This script reads those records,
not the configuration, and writes one markdown file:

- the verdict: PASS when every cell of the grid finished, none failed, every recorded device is
  the expected one and the report was written; otherwise each problem on its own line;
- per cell: the training device and seconds, the evaluation device, its backend, how many
  adapters were evaluated together (several only on GPU: mixed-adapter batches) and the
  seconds of each evaluation phase;
- the time per phase over the grid (from the run's ``status.json``) and per evaluation phase;
- the compact summary (``objlab results RUN_DIR --summary``).

    python benchmarks/e2e_check.py RUN_DIR --device cuda --md OUT/e2e.md [--note TEXT]

Exit status 0 on PASS, 1 otherwise (the file is written either way).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from common import write_atomic

STORE_FILE = "results.duckdb"
STATUS_FILE = "status.json"
REPORT_FILE = Path("report") / "report.html"


def device_type(recorded: str | None) -> str | None:
    """``cuda:0`` -> ``cuda``: the check compares device types (one GPU per cell)."""
    return recorded.split(":")[0] if recorded else None


def read_store(run_dir: Path) -> tuple[list[dict], list[dict], int | None]:
    """(finished cells with their manifests, failures not finished since, cells in the grid)."""
    from objlab.config import parse_config
    from objlab.runner.grid import all_cell_ids
    from objlab.store import ResultsStore

    with ResultsStore.in_run_dir(run_dir, read_only=True) as store:
        frame = store.frame("SELECT cell_id, kind, train_seconds, eval_seconds, device, train_manifest, eval_manifest FROM cells ORDER BY finished_at")
        failures = [{"cell": f.cell_id, "phase": f.phase, "error": f"{f.error_type}: {f.message}"} for f in store.failures(open_only=True)]
        config = store.meta("config")
    cells = []
    for row in frame.astype(object).where(frame.notna(), None).to_dict("records"):  # no training seconds: None, not NaN
        train = json.loads(row["train_manifest"]) if row["train_manifest"] else None
        evaluation = json.loads(row["eval_manifest"]) if row["eval_manifest"] else None
        cells.append({**row, "train_manifest": train, "eval_manifest": evaluation})
    expected = len(all_cell_ids(parse_config(json.loads(config)))) if config else None
    return cells, failures, expected


def cell_rows(cells: list[dict]) -> list[dict]:
    """Per cell: each stage's recorded device, its seconds, the evaluation's backend and grouping."""
    rows = []
    for cell in cells:
        train, evaluation = cell["train_manifest"], cell["eval_manifest"] or {}
        phases = evaluation.get("seconds", {})
        rows.append({
            "cell": cell["cell_id"],
            "kind": cell["kind"],
            "train_device": train["device"] if train else None,
            "train_s": cell["train_seconds"],
            "eval_device": evaluation.get("device"),
            "backend": evaluation.get("backend"),
            "together": evaluation.get("evaluated_together"),
            "eval_phases": {name: round(seconds, 2) for name, seconds in phases.items()},
        })
    return rows


def problems(rows: list[dict], failures: list[dict], expected_cells: int | None, device: str, run_dir: Path) -> list[str]:
    """Everything that keeps the check from passing, one line each."""
    found = []
    if expected_cells is not None and len(rows) < expected_cells:
        found.append(f"{len(rows)} of {expected_cells} cells finished (the rest were not reached or failed)")
    found += [f"{f['cell']} failed in {f['phase']}: {f['error'][:300]}" for f in failures]
    for row in rows:
        stages = {"training": row["train_device"], "evaluation": row["eval_device"]} if row["kind"] == "adapter" else {
            "evaluation": row["eval_device"]}  # the base model is evaluated, not trained
        for stage, recorded in stages.items():
            if device_type(recorded) != device:
                found.append(f"{row['cell']}: {stage} ran on {recorded or 'an unrecorded device'}, not {device}")
    if not (run_dir / REPORT_FILE).is_file():
        found.append(f"{run_dir / REPORT_FILE}: not written (the report stage did not run or failed)")
    return found


def grid_phases(run_dir: Path) -> dict[str, list[float]]:
    """Seconds of every finished phase of the grid by kind (train, evaluate, evaluate base,
    record), from ``status.json``; empty when the file is missing or unreadable."""
    try:
        status = json.loads((run_dir / STATUS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    phases: dict[str, list[float]] = defaultdict(list)
    for phase in status.get("phases", []):
        phases[phase["phase"]].append(phase["seconds"])
    return dict(phases)


def compact_summary(run_dir: Path) -> str:
    """``objlab results RUN_DIR --summary``, as a user would read it."""
    done = subprocess.run([sys.executable, "-m", "objlab", "results", str(run_dir), "--summary"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else f"(objlab results --summary failed: {(done.stderr or done.stdout).strip()[-1500:]})"


def render(verdict: str, found: list[str], rows: list[dict], phases: dict[str, list[float]], summary: str, notes: list[str]) -> str:
    lines = ["### End to end: every stage of every cell on its device", "", verdict, ""]
    lines += [f"- {problem}" for problem in found]
    lines += [f"- {note}" for note in notes]
    lines += ["", "| cell | training device | training s | evaluation device | backend | adapters together | evaluation phases (s) |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        train_s = "-" if row["train_s"] is None else f"{row['train_s']:.1f}"
        evaluated = ", ".join(f"{name} {seconds:.1f}" for name, seconds in row["eval_phases"].items()) or "-"
        lines.append(f"| {row['cell']} | {row['train_device'] or '-'} | {train_s} | {row['eval_device'] or '-'} | "
                     f"{row['backend'] or '-'} | {row['together'] or '-'} | {evaluated} |")
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        for name, seconds in row["eval_phases"].items():
            totals[name] += seconds
    lines += ["", "Time per phase:", ""]
    lines += [f"- grid {name}: {sum(values):.1f} s over {len(values)} phase(s)" for name, values in phases.items()]
    lines += [f"- evaluation {name}: {seconds:.1f} s over the cells" for name, seconds in totals.items()]
    lines += ["", "Compact summary (`objlab results RUN_DIR --summary`):", "", "```", summary, "```", ""]
    return "\n".join(lines)


def check(run_dir: Path, device: str, notes: list[str]) -> tuple[bool, str, dict]:
    """(passed, the markdown, the facts as a dict) for ``run_dir``."""
    if not (run_dir / STORE_FILE).is_file():
        verdict = f"e2e check: FAIL: {run_dir / STORE_FILE} does not exist (the grid wrote nothing: see the session log)"
        return False, render(verdict, [], [], {}, "(no store)", notes), {"passed": False}
    cells, failures, expected = read_store(run_dir)
    rows = cell_rows(cells)
    found = problems(rows, failures, expected, device, run_dir)
    together = max((row["together"] or 1 for row in rows), default=1)
    if found:
        verdict = f"e2e check: FAIL ({len(found)} problem(s); {len(rows)} cell(s) finished)"
        if rows and not any("ran on" in problem for problem in found):
            verdict += f"; every stage of the {len(rows)} finished cell(s) ran on {device}"
    else:
        verdict = (f"e2e check: PASS: every stage of all {len(rows)} cells (training, evaluation: "
                   f"{', '.join(dict.fromkeys(p for row in rows for p in row['eval_phases']))}; the report) ran on {device}, "
                   f"the device it was given; up to {together} adapter(s) evaluated together")
    text = render(verdict, found, rows, grid_phases(run_dir), compact_summary(run_dir), notes)
    return not found, text, {"passed": not found, "problems": found, "cells": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="the run directory (holds results.duckdb)")
    parser.add_argument("--device", required=True, choices=["cpu", "cuda"], help="the device every stage was given")
    parser.add_argument("--md", required=True, help="markdown file to write")
    parser.add_argument("--note", action="append", default=[], help="a line to add under the verdict (repeatable)")
    args = parser.parse_args()
    passed, text, _ = check(args.run_dir, args.device, args.note)
    write_atomic(args.md, text)
    print(text)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
