"""The ``objlab`` command line. Thin by design: each command parses its arguments and calls the
library function that the tests also call; user errors are printed without a traceback."""

from __future__ import annotations

import functools
import importlib
import warnings
from importlib import resources
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from objlab.errors import ObjlabError

app = typer.Typer(help="How does the fine-tuning objective change what fine-tuning does to a model's safety?", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


def user_errors(command):
    """Print objlab's own errors (bad config, data, state) as messages, exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ObjlabError as error:
            err_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)  # text, not markup
            raise typer.Exit(2) from None

    return wrapper


@app.callback()
def main(
    plugin: Annotated[
        Optional[list[str]], typer.Option(help="Import a module that registers objectives, attacks or tasks.")
    ] = None,
) -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)  # library deprecation chatter, not the user's concern
    for module in plugin or []:
        importlib.import_module(module)


INIT_PRESETS = {"objective-matters": "objective_matters.yaml"}  # --preset -> template in objlab/templates


@app.command()
@user_errors
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("objlab.yaml"),
    preset: Annotated[Optional[str], typer.Option(help="objective-matters: the reference study's whole grid (docs/reproducing.md).")] = None,
) -> None:
    """Write a commented example experiment config, or a preset study's grid."""
    if preset is not None and preset not in INIT_PRESETS:
        raise ObjlabError(f"--preset: unknown preset {preset!r} (known: {', '.join(INIT_PRESETS)})")
    if path.exists():
        raise ObjlabError(f"{path} already exists; choose another path")
    template = INIT_PRESETS[preset] if preset else "example.yaml"
    path.write_text(resources.files("objlab.templates").joinpath(template).read_text())
    console.print(f"wrote {path}")
    if preset:
        console.print(f"price it before anything runs: objlab run {path} --plan --gpu H100 (the lines marked SUPPLY name what to provide)", soft_wrap=True)


@app.command()
def objectives() -> None:
    """List the registered objectives with a one-line description each."""
    from objlab.objectives import registry

    table = Table("name", "description", "reference", "data")
    for name in registry.names():
        cls = registry.get(name)
        data = "prompt, chosen, rejected" if cls.needs_preference else "prompt, response"
        table.add_row(name, cls.description, cls.reference or "-", data)
    console.print(table)


@app.command()
def scorers() -> None:
    """List the registered scorers: whose instrument each is, what it needs, what it says."""
    from objlab.scoring import catalog
    from objlab.scoring.base import ORIGIN_TEXT

    table = Table("name", "whose", "needs", "gives", "description")
    for name in catalog.names():
        cls = catalog.SCORERS.get(name)
        table.add_row(name, ORIGIN_TEXT[cls.origin], cls.needs.describe(), ", ".join(sorted(cls.verdicts)), cls.description)
    console.print(table)
    console.print("Name one in eval.jailbreak.scorer (the primary scorer), eval.jailbreak.scorers (reported beside it) or "
                  "objectives.aware.scorer; 'python:module:function' is your own. Details: docs/evaluation.md#scorers")


@app.command()
@user_errors
def train(
    config: Annotated[Path, typer.Argument(help="Experiment config YAML.")],
    objective: Annotated[str, typer.Option(help="Objective name (see `objlab objectives`).")],
    budget: Annotated[list[int], typer.Option(help="Token budget; repeat for snapshots at several budgets.")],
    out: Annotated[Path, typer.Option(help="Output directory.")],
    seed: Annotated[int, typer.Option(help="Seed (data order, LoRA init, dropout).")] = 0,
    model: Annotated[Optional[str], typer.Option("--model", help="Which model of a config with several (models:): its key.")] = None,
) -> None:
    """Fine-tune one LoRA adapter at an exact token budget (resumes if OUT holds a checkpoint).

    With one --budget the adapter is written to OUT; with several, one run to the largest
    writes OUT/budget-<B>/ for each (bit-identical to separate runs).
    """
    from objlab.config import load_config
    from objlab.objectives import registry
    from objlab.progress import Board
    from objlab.train.loop import TrainRequest
    from objlab.train.loop import train as run_training

    experiment = _one_model(load_config(config), model)
    if objective not in registry.names():
        raise ObjlabError(f"--objective: unknown objective {objective!r} (known: {', '.join(registry.names())})")
    budgets = sorted(set(budget))
    outputs = {budgets[0]: out} if len(budgets) == 1 else {b: out / f"budget-{b}" for b in budgets}
    with Board() as board:
        manifests = run_training(TrainRequest(experiment, objective, seed, outputs, out), board=board)
    for value, manifest in manifests.items():
        console.print(
            f"{objective} budget {value:,}: {manifest.budget_tokens:,} task tokens, "
            f"{manifest.compute_tokens:,} compute tokens, {manifest.steps} steps -> {outputs[value]}"
        )


@app.command()
@user_errors
def attacks(
    config: Annotated[Optional[Path], typer.Argument(help="An experiment config: its eval.jailbreak attacks_dir and strongreject are read.")] = None,
    strongreject: Annotated[
        Optional[Path], typer.Option(help="StrongREJECT's wrapping_jailbreaks.json, or a directory holding it (overrides the config's).")
    ] = None,
) -> None:
    """List every available attack with its source (objlab / user / strongreject), and the named sets."""
    from objlab.config import load_config
    from objlab.evaluate.axes.attack_catalog import attack_sets, build_catalog, listing
    from objlab.evaluate.axes.strongreject_attacks import NEEDS_LLM

    jailbreak = load_config(config).eval.jailbreak if config is not None else None
    attacks_dir = jailbreak.attacks_dir if jailbreak else None
    path = str(strongreject) if strongreject is not None else (jailbreak.strongreject if jailbreak else None)
    catalog = build_catalog(attacks_dir, path)
    entries = listing(catalog)
    width = max(len(entry.name) for entry in entries)
    console.print(f"{len(entries)} attacks available (name, source, sets, description):")
    for entry in entries:
        sets = f"[{', '.join(entry.sets)}] " if entry.sets else ""
        console.print(f"  {entry.name:<{width}}  {entry.origin:<12}  {sets}{entry.description}", markup=False, highlight=False, soft_wrap=True)
    for named in attack_sets().values():
        members = Table("role", "StrongREJECT key", "objlab's own", "why", title=escape(f"set {named.name}: {named.description}"))
        for member in named.members:
            members.add_row(*(escape(text) for text in (member.role, member.strongreject, member.objlab, member.why)))
        console.print(members)
    if path:
        console.print(f"StrongREJECT files: {path}. Its jailbreaks that need an attacker LLM are not available: {', '.join(NEEDS_LLM)}.", markup=False)
    else:
        console.print("StrongREJECT's jailbreaks: give --strongreject PATH (or eval.jailbreak.strongreject) to list them; seed5 then uses them.")


@app.command("refusal-check")
@user_errors
def refusal_check(
    labelled: Annotated[
        Optional[list[Path]],
        typer.Option(help="A labelled file (repeatable): objlab's JSONL (response, refused), XSTest's labelled completions "
                          "(CSV: prompt, completion, final_label) or a three-class JSONL (response, label). "
                          "Default: objlab's refusal set and its three-class set of real answers."),
    ] = None,
    string_matching: Annotated[
        Optional[Path], typer.Option(help="StrongREJECT's string_matching.txt: measure its phrase scorer too.")
    ] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the figures as JSON: {file: {scorer: {...}}}.")] = None,
) -> None:
    """Precision and recall (positive: refused) of the offline classifier on labelled answers, per
    file (one source model per XSTest file) and split, with 95% intervals and XSTest's partial
    refusals apart; per class on a three-class file; and of StrongREJECT's string matching when given."""
    import json

    from objlab.evaluate.results.instrument_quality import load_answers, load_refusal_set, read_labelled
    from objlab.scoring.refusal import CLASSIFIER_NAME, classify_answer
    from objlab.scoring.string_matching import load_phrases, match_refusal

    sets = [read_labelled(str(path)) for path in labelled] if labelled else [load_refusal_set(), load_answers()]
    scorers = [(CLASSIFIER_NAME, lambda item: classify_answer(item.response, item.request, item.presented).refused)]
    if string_matching is not None:
        phrases = load_phrases(str(string_matching))
        scorers.append((phrases.identity, lambda item: match_refusal(phrases, item.response).refused))
    figures: dict[str, dict] = {}
    for chosen in sets:
        figures[chosen.source] = _check_one(chosen, scorers)
    if json_out is not None:
        json_out.write_text(json.dumps(figures, indent=2) + "\n")
        console.print(f"wrote {json_out}", markup=False)


def _check_one(chosen, scorers) -> dict:
    """Print one file's tables and return its figures (for --json)."""
    from objlab.evaluate.results.instrument_quality import measure, measure_classes, splits
    from objlab.scoring.refusal import CLASSIFIER_NAME as classifier_name, classify_answer

    parts = ["all"] if chosen.format == "xstest" else splits(chosen.items)
    table = Table("scorer", "split", "items", "precision [95% CI] n", "recall [95% CI] n", "partial refusals called refused", "misclassified",
                  title=escape(f"{chosen.source} ({chosen.format}; positive class: refused)"))
    figures: dict[str, dict] = {}
    for name, is_refusal in scorers:
        for split in parts:
            quality = measure(chosen.items, is_refusal, name, split)
            cells = [f"{e.value:.3f} [{e.ci_low:.3f}, {e.ci_high:.3f}] n={e.n}" for e in (quality.precision, quality.recall)]
            partial = f"{quality.partial_refused}/{quality.partial_n}" if quality.partial_n else "-"
            wrong = ", ".join(quality.wrong[:8]) + (f" (+{len(quality.wrong) - 8})" if len(quality.wrong) > 8 else "")
            table.add_row(name, split, str(quality.n), *cells, partial, escape(wrong) or "-")
            figures.setdefault(name, {})[split] = quality.to_dict()
        figures[name] = {**figures[name]["all"], "splits": figures[name]} if len(parts) > 1 else figures[name]["all"]
    console.print(table)
    if chosen.format == "answers":
        classes = measure_classes(chosen.items, lambda item: classify_answer(item.response, item.request, item.presented).answer)
        per_class = Table("class", "precision [95% CI] n", "recall [95% CI] n", title=escape(f"{classifier_name} per answer class on {chosen.source}"))
        for label, quality in classes.items():
            per_class.add_row(label, *(f"{e.value:.3f} [{e.ci_low:.3f}, {e.ci_high:.3f}] n={e.n}" for e in (quality.precision, quality.recall)))
        console.print(per_class)
        figures[classifier_name]["classes"] = {label: quality.to_dict() for label, quality in classes.items()}
    return figures


def _metrics_table(rows) -> Table:
    """The figures as a table: value with its 95% interval, n, and the paired test if any."""
    table = Table("axis", "metric", "group", "value [95% CI]", "n", "p (paired)", "status / note")
    for row in rows:
        if row.status != "ok":
            figure = "-"
        else:
            figure = f"{row.value:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}]"
        p_value = "" if row.p_value is None else f"{row.p_value:.3g}"
        remark = row.note if row.status == "ok" else f"{row.status}: {row.note}"
        table.add_row(row.axis, row.metric, row.group or "(all)", figure, str(row.n), p_value, remark)
    return table


@app.command()
@user_errors
def evaluate(
    config: Annotated[Path, typer.Argument(help="Experiment config YAML (its eval: section says what to measure).")],
    out: Annotated[Path, typer.Option(help="Output directory for metrics.csv, items.jsonl, eval_manifest.json.")],
    adapter: Annotated[Optional[Path], typer.Option(help="LoRA adapter directory; omit to evaluate the base model.")] = None,
    baseline: Annotated[
        Optional[Path], typer.Option(help="A previous `objlab evaluate` output of the base model: adds paired tests against it.")
    ] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Which model of a config with several (models:): its key.")] = None,
) -> None:
    """Evaluate the base model or one adapter: capability, jailbreak attack success, persona drift."""
    from objlab.config import load_config
    from objlab.evaluate.evaluator import (
        EvalSession,
        compare_with_base,
        read_result,
        write_result,
    )
    from objlab.evaluate.evaluator import evaluate as run_evaluation
    from objlab.progress import Board

    experiment = _one_model(load_config(config), model)
    base = read_result(baseline) if baseline is not None else None
    with Board() as board:
        session = EvalSession(experiment)
        result = run_evaluation(experiment, session, adapter, board=board)
    if base is not None:
        result.metrics += compare_with_base(result, base)
    write_result(result, out)
    console.print(_metrics_table(result.metrics))
    if result.info.jailbreak is not None:
        from objlab.report.provenance import asr_statement

        for line in asr_statement(result.info.jailbreak):
            console.print(line, style="dim", markup=False, highlight=False)
    console.print(f"{len(result.items)} item records -> {out}")


def _one_model(experiment, key: str | None):
    """The config of one model: the config itself, or (``models:``) the one ``--model`` names."""
    if not experiment.several_models:
        if key is not None:
            raise ObjlabError(f"--model {key}: this config names one model (model:); --model picks one of several (models:)")
        return experiment
    if key is None:
        keys = ", ".join(found for found, _ in experiment.per_model())
        raise ObjlabError(f"this config names several models (models:); choose one with --model (its keys: {keys})")
    return experiment.for_model(key)


def _default_run_dir(config_path: Path) -> Path:
    from objlab.config import load_config

    return Path("runs") / load_config(config_path).name


def _finish_run(run_dir: Path, primary: str | None) -> None:
    """After a grid: the headline table on the console and the HTML report on disk."""
    from objlab.report.html import write_report
    from objlab.report.tables import render_headline
    from objlab.store import ResultsStore

    with ResultsStore.in_run_dir(run_dir, read_only=True) as store:
        render_headline(store, console, primary)
    console.print(f"report: {write_report(run_dir, primary)}")


@app.command()
@user_errors
def run(
    config: Annotated[Path, typer.Argument(help="Experiment config YAML.")],
    out: Annotated[Optional[Path], typer.Option(help="Run directory (default: runs/<config name>).")] = None,
    plan: Annotated[bool, typer.Option("--plan", help="Print the cells, tokens, generations and a time estimate; run nothing.")] = False,
    gpu: Annotated[Optional[str], typer.Option(help="With --plan: price the grid in GPU-hours on one H100 or H200 (measured or derived rates).")] = None,
    ray: Annotated[Optional[str], typer.Option(help="Run cells as Ray tasks: a cluster address, or 'local'.")] = None,
    primary: Annotated[Optional[str], typer.Option(help="Capability metric for the frontier, e.g. 'accuracy_flexible:gsm8k'.")] = None,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first failing cell (default: record it and go on).")] = False,
) -> None:
    """Train and evaluate every cell of the grid, store every number, write the report.

    Re-running on the same directory resumes: finished cells are kept, an interrupted training
    run continues from its last checkpoint, failed cells are retried, new objectives/budgets/seeds
    run only their cells. A failing cell is recorded and the grid goes on; the exit status is
    then 1. `objlab status RUN_DIR` shows the progress from another terminal."""
    from objlab.config import load_config
    from objlab.progress import Board

    experiment = load_config(config)
    run_dir = out or _default_run_dir(config)
    if gpu is not None and not plan:
        raise ObjlabError("--gpu prices a plan: use it with --plan")
    if plan:
        from objlab.runner.plan import build_study, render_study
        from objlab.runner.plan_inputs import PlanInputs
        from objlab.store import STORE_FILE, ResultsStore

        from objlab.runner.guard import check_config

        finished: set[str] = set()
        if (run_dir / STORE_FILE).is_file():
            with ResultsStore.in_run_dir(run_dir, read_only=True) as store:
                check_config(store, experiment, str(run_dir))  # a changed config is refused, as `objlab run` refuses it
                finished = store.finished_cells()
        render_study(build_study(experiment, finished, gpu=gpu, inputs=PlanInputs.lenient()), console)
        return
    from objlab.evaluate.instruments import check_instruments
    from objlab.runner.execute import run_grid

    check_instruments(experiment.eval)  # a bad StrongREJECT path fails now, not after hours of training
    with Board() as board:
        summary = run_grid(experiment, run_dir, ray=ray, board=board, fail_fast=fail_fast)
    console.print(f"{run_dir}: {len(summary.cells_run)} cells run now, {summary.cells_total} in the grid, {summary.seconds:.0f} s")
    _finish_run(run_dir, primary)
    if summary.cells_failed:
        err_console.print(f"{len(summary.cells_failed)} cell(s) failed: {', '.join(summary.cells_failed)}; `objlab run` again retries them", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command()
@user_errors
def status(
    run_dir: Annotated[Path, typer.Argument(help="A run directory of `objlab run` (running or not).")],
    cells: Annotated[bool, typer.Option("--cells", help="Also list every cell with its state.")] = False,
) -> None:
    """Progress of a grid, also while it runs: finished, running (with its phase), pending and
    failed cells; time per phase; the time left, estimated from this run's own rates; the last failure."""
    from objlab.runner.status_view import grid_view, render_status

    render_status(grid_view(run_dir), console, all_cells=cells)


@app.command()
@user_errors
def results(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (holds results.duckdb).")],
    export: Annotated[Optional[str], typer.Option(help="Also export every table: csv or parquet.")] = None,
    to: Annotated[Optional[Path], typer.Option(help="Export directory (default: RUN_DIR/export).")] = None,
    primary: Annotated[Optional[str], typer.Option(help="Capability metric to show, e.g. 'accuracy_strict:gsm8k'.")] = None,
    summary: Annotated[bool, typer.Option("--summary", help="Only the compact objectives-by-budget summary (100 columns).")] = False,
) -> None:
    """Print the headline table of a run (every figure with its 95% interval and n)."""
    from objlab.report.data import load_report_data
    from objlab.report.evidence import render_evidence
    from objlab.report.summary import compact_summary
    from objlab.report.tables import render_headline

    store = _open_store(run_dir)
    with store:
        if summary:
            console.print(compact_summary(load_report_data(store, primary), store), markup=False, highlight=False, soft_wrap=True)
            return
        render_headline(store, console, primary)
        render_evidence(load_report_data(store, primary), console)
        if export is not None:
            if export not in ("csv", "parquet"):
                raise ObjlabError(f"--export: expected csv or parquet, got {export!r}")
            paths = store.export(to or run_dir / "export", export)
            console.print(f"exported {len(paths)} tables to {to or run_dir / 'export'}")


def _open_store(run_dir: Path):
    from objlab.store import STORE_FILE, ResultsStore

    if not (run_dir / STORE_FILE).is_file():
        raise ObjlabError(f"{run_dir}: no {STORE_FILE} here; is this a run directory written by `objlab run`?")
    return ResultsStore.in_run_dir(run_dir, read_only=True)


@app.command()
@user_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (holds results.duckdb).")],
    primary: Annotated[Optional[str], typer.Option(help="Capability metric for the frontier, e.g. 'accuracy_strict:gsm8k'.")] = None,
) -> None:
    """Write RUN_DIR/report/report.html (self-contained, works offline) and one PNG per plot."""
    from objlab.report.html import write_report

    _open_store(run_dir).close()
    console.print(f"report: {write_report(run_dir, primary)}")


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option(help="Run directory for the demo grid.")] = Path("objlab-demo"),
    size: Annotated[str, typer.Option(help="demo (the README's run) or test (smaller, for a quick look).")] = "demo",
    organism_seed: Annotated[int, typer.Option(help="Seed of the organism (its world, initialisation and training order).")] = 0,
    lm_eval: Annotated[
        bool, typer.Option("--lm-eval", help="Also run objlab's own lm-evaluation-harness tasks on every cell (needs objlab[lm-eval]).")
    ] = False,
    strongreject: Annotated[
        Optional[Path], typer.Option(help="StrongREJECT's wrapping_jailbreaks.json: seed5 then uses its templates.")
    ] = None,
) -> None:
    """The whole study on a toy model organism, on CPU: build (or load) the organism, run every
    objective at three budgets, evaluate, and write the report."""
    import yaml

    from objlab.config import load_config
    from objlab.organism.build import build_organism, default_cache_dir
    from objlab.organism.demo import DEMO_BUDGETS, demo_config, write_lm_eval_tasks
    from objlab.progress import Board
    from objlab.report.data import format_budget
    from objlab.runner.execute import run_grid

    if size not in ("demo", "test"):
        raise ObjlabError(f"--size: expected demo or test, got {size!r}")
    if lm_eval:
        from objlab.evaluate.axes.harness import require_lm_eval

        require_lm_eval()
    chosen = None
    if strongreject is not None:
        from objlab.evaluate.axes.strongreject_attacks import strongreject_attacks

        chosen = str(strongreject.resolve())
        strongreject_attacks(chosen)  # refused now, before the organism is built
    budgets = ", ".join(format_budget(budget) for budget in DEMO_BUDGETS[size])
    console.print(f"objlab demo: a toy model organism (built once, cached under {default_cache_dir()}), fine-tuned under every "
                  f"objective at {budgets} tokens and evaluated with the base model, into {out}/ (results.duckdb, report/); "
                  "its figures are a toy's", highlight=False, soft_wrap=True)
    with Board() as board:
        organism = build_organism(size, seed=organism_seed, board=board)
        out.mkdir(parents=True, exist_ok=True)
        tasks = write_lm_eval_tasks(organism, out / "lm_eval_tasks") if lm_eval else None
        config_path = out / "demo.yaml"
        config_path.write_text(yaml.safe_dump(demo_config(organism, lm_eval_tasks=tasks, strongreject=chosen), sort_keys=False))
        summary = run_grid(load_config(config_path), out, board=board)
    console.print(f"organism: {organism.root}\n{out}: {summary.cells_total} cells, {summary.seconds:.0f} s")
    _finish_run(out, None)
    from objlab.report.data import load_report_data
    from objlab.report.summary import compact_summary

    with _open_store(out) as store:
        console.print("\n" + compact_summary(load_report_data(store), store), markup=False, highlight=False, soft_wrap=True)
    if summary.cells_failed:
        err_console.print(f"{len(summary.cells_failed)} cell(s) failed: {', '.join(summary.cells_failed)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


if __name__ == "__main__":  # pragma: no cover
    app()
