"""What a run's numbers rest on: model, data, scorers, backend, devices, and what is missing.

A figure is only as good as the model, data and judge behind it, so the report states them
beside the plots. Values come from the cells' manifests (what actually ran) where they were
recorded, and from the config (what was asked for) otherwise; when cells disagree (a grid
extended with another judge, a different GPU) every distinct value is listed with its cells.
Everything here is plain text: escaping is the renderer's job.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable

import pandas as pd
from pydantic import BaseModel

from objlab.records.evaluation import JailbreakDefinition, SubsetInfo
from objlab.report.data import ReportData, format_budget, pending_cells

NOT_RECORDED = "not recorded"
SOFTWARE = ("objlab", "torch", "transformers", "peft", "python")
CELL_STATUS_COLUMNS = ["cell", "status", "mode", "budget_tokens", "compute_tokens", "steps", "final_loss", "finished_at"]


def distinct(manifests: Iterable[BaseModel | None], key: str) -> str:
    """The distinct values of field ``key`` in ``manifests`` (typed records; None for a cell
    without one); several values say how many cells each."""
    counts: dict[str, int] = {}
    for info in manifests:
        value = getattr(info, key, None)
        if value not in (None, "", {}, []):
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            counts[text] = counts.get(text, 0) + 1
    if len(counts) <= 1:
        return next(iter(counts), NOT_RECORDED)
    return "; ".join(f"{value} ({count} cells)" for value, count in counts.items())


def _settings(values: dict, keys: tuple[str, ...] | None = None) -> str:
    """``key=value, ...`` of the set entries of ``values`` (only ``keys`` when given)."""
    chosen = {key: values.get(key) for key in keys} if keys else values
    return ", ".join(f"{key}={value}" for key, value in chosen.items() if value not in (None, "", [], {})) or "-"


def _objectives(config: dict) -> str:
    objectives = config.get("objectives") or {}
    if isinstance(objectives, list):
        return ", ".join(map(str, objectives))
    return "; ".join(f"{name} ({_settings(params)})" if params else name for name, params in objectives.items())


def _eval_sources(config: dict) -> str:
    evaluation = config.get("eval") or {}
    sources = [
        f"capability {task.get('name') or task.get('kind')}: {task.get('source')}" for task in evaluation.get("capability") or []
    ]
    if (jailbreak := evaluation.get("jailbreak")) and jailbreak.get("prompts"):
        sources.append(f"jailbreak prompts: {jailbreak['prompts']}")
    if (overrefusal := evaluation.get("overrefusal")) and overrefusal.get("prompts"):
        sources.append(f"over-refusal prompts: {overrefusal['prompts']}")
    if (toxicity := evaluation.get("toxicity")) and toxicity.get("prompts"):
        sources.append(f"toxicity prompts (ToxiGen format): {toxicity['prompts']}")
    if persona := evaluation.get("persona"):
        sources.append(f"persona: {persona.get('dir') or 'default traits'}")
    if lm_eval := evaluation.get("lm_eval"):
        where = f" from {lm_eval['include_path']}" if lm_eval.get("include_path") else ""
        sources.append(f"lm-eval tasks: {', '.join(lm_eval.get('tasks') or [])}{where}")
    return "; ".join(sources) or "-"


def _lm_eval_run(run) -> str:
    """One cell's lm-eval run in a line: version, each task's version, shots and documents, settings."""
    tasks = ", ".join(
        f"{task.name} v{task.version or '?'} ({task.num_fewshot if task.num_fewshot is not None else '?'}-shot, "
        f"{task.evaluated} of {task.documents} documents)" if task.kind == "task" else f"{task.name} (group) v{task.version or '?'}"
        for task in run.tasks
    )
    return (f"lm-eval {run.lm_eval_version}: {tasks}; chat template applied, few-shot examples as chat turns; "
            f"batch size {run.batch_size}")


def _lm_eval(data: ReportData) -> str:
    """lm-eval's version and task versions (every distinct one with its cells), and how CFT prompts were presented."""
    runs = [info.lm_eval for info in data.cells["eval_manifest"] if info is not None and info.lm_eval is not None]
    counts: dict[str, int] = {}
    for line in map(_lm_eval_run, runs):
        counts[line] = counts.get(line, 0) + 1
    text = "; ".join(line if len(counts) == 1 else f"{line} ({count} cells)" for line, count in counts.items()) or NOT_RECORDED
    transforms = sorted({run.prompt_transform for run in runs if run.prompt_transform})
    return "; ".join([text, *transforms])


def _judge(data: ReportData) -> str:
    recorded = distinct(data.cells["eval_manifest"], "judge")
    if recorded != NOT_RECORDED:
        return recorded
    judge = (data.config.get("eval") or {}).get("judge") or {}
    return "none (no judge configured)" if judge.get("kind", "none") == "none" else _settings(judge)


def _translator(data: ReportData) -> str:
    recorded = distinct(data.cells["eval_manifest"], "translator")
    return "none configured (attacks that need one are skipped)" if recorded == NOT_RECORDED else recorded


def _devices(data: ReportData) -> str:
    counts: dict[str, int] = {}
    for info in data.cells["eval_manifest"]:
        if info is None:
            continue
        gpu, device = info.environment.get("gpu"), info.device
        if device:
            name = f"{device} ({gpu})" if gpu else str(device)
            counts[name] = counts.get(name, 0) + 1
    return "; ".join(f"{name} ({count} cells)" for name, count in counts.items()) or NOT_RECORDED


def _software(data: ReportData) -> str:
    versions = set()
    for info in data.cells["eval_manifest"]:
        environment = info.environment if info is not None else {}
        parts = [f"{name} {environment[name]}" for name in SOFTWARE if environment.get(name)]
        if parts:
            versions.add(", ".join(parts))
    return "; ".join(sorted(versions)) or NOT_RECORDED


def jailbreak_definitions(data: ReportData) -> list[JailbreakDefinition]:
    """The distinct ASR definitions the cells were evaluated under (one in a consistent grid)."""
    found = [info.jailbreak for info in data.cells["eval_manifest"] if info is not None and info.jailbreak is not None]
    return list({definition.model_dump_json(): definition for definition in found}.values())


def _jailbreak_scorers(data: ReportData) -> str:
    """Each definition's scorers: the primary one (its label and identity) and those beside it."""
    texts = []
    for definition in jailbreak_definitions(data):
        if not definition.scorers:  # older stores name the primary scorer only
            texts.append(f"primary: {definition.scorer_label or definition.scorer}")
            continue
        primary, *others = definition.scorers
        text = f"primary: {primary.label} ({primary.identity})"
        if others:
            text += "; beside it: " + ", ".join(f"{scorer.label} ({scorer.identity})" for scorer in others)
        texts.append(text)
    return " | ".join(texts) or NOT_RECORDED


def asr_statement(definition: JailbreakDefinition) -> list[str]:
    """The ASR definition in a few lines: success criterion and scorer, the macro, each attack's source."""
    if definition.macro_over:
        macro = f"macro ASR = the mean over {', '.join(definition.macro_over)} (each attack counts equally)"
    else:
        macro = "macro ASR: none (no attack ran besides the no-attack condition)"
    if definition.no_attack:
        macro += f"; {', '.join(definition.no_attack)} = the no-attack condition (base rate), reported on its own, not in the macro"
    if definition.skipped:
        macro += f"; skipped, not in the macro: {', '.join(definition.skipped)}"
    threshold = f"threshold {definition.threshold:g}" if definition.threshold is not None else "no threshold"
    sources = "; ".join(f"{attack.name} ({attack.origin}: {attack.source})" for attack in definition.attacks)
    return [
        (f"ASR per attack = the share of forbidden prompts whose answer succeeds, with a Wilson 95% interval; "
         f"success: {definition.success}; scorer: {definition.scorer}; {threshold}."),
        macro + ".",
        f"Attack sources: {sources}.",
    ]


ORIGIN_WORDS = {"objlab": "objlab's own", "strongreject": "StrongREJECT's (the user's copy)", "user": "the user's"}


def asr_instruments(data: ReportData) -> str:
    """One line naming the ASR's scorer and whose attack texts the macro covers, for every
    figure that shows an ASR: a PNG travels without the report's definition paragraph, so an
    objlab-own instrument is labelled on the figure itself."""
    lines = []
    for definition in jailbreak_definitions(data):
        origins = Counter(attack.origin for attack in definition.attacks if attack.name in definition.macro_over)
        attacks = ", ".join(f"{count} {ORIGIN_WORDS.get(origin, origin)}" for origin, count in origins.items()) or "none"
        lines.append(f"scorer: {definition.scorer_label or definition.scorer}; attacks in the macro: {attacks}")
    return " | ".join(lines) or "ASR definition not recorded"


def asr_statements(data: ReportData) -> list[str]:
    """``asr_statement`` of every distinct definition in the run (several when cells differ)."""
    definitions = jailbreak_definitions(data)
    if len(definitions) <= 1:
        return [line for definition in definitions for line in asr_statement(definition)]
    return [f"[definition {index} of {len(definitions)}] {line}" for index, definition in enumerate(definitions, 1) for line in asr_statement(definition)]


def _subset_text(key: str, info: SubsetInfo) -> str:
    if info.limit is None or not info.item_ids:
        return f"{key}: all {info.rows} rows"
    by = f", stratified by {info.stratified_by} ({', '.join(f'{name} {count}' for name, count in info.strata.items())})" if info.stratified_by else ""
    return f"{key}: {len(info.item_ids)} of {info.rows} rows, seeded sample (seed {info.seed}){by}"


def subsets_text(data: ReportData) -> str:
    """Which rows each evaluation file contributed (ids in the cells' evaluation info)."""
    texts: dict[str, None] = {}
    for info in data.cells["eval_manifest"]:
        for key, subset in (info.subsets if info is not None else {}).items():
            texts[_subset_text(key, subset)] = None
    return "; ".join(texts) or NOT_RECORDED


def run_facts(data: ReportData) -> list[tuple[str, str]]:
    """(label, text) pairs: the model, data, grid, scorers, backend and devices of the run."""
    config = data.config
    model = config.get("model") or {}
    task_data = config.get("data") or {}
    generation = (config.get("eval") or {}).get("generation") or {}
    evaluations, trainings = list(data.cells["eval_manifest"]), list(data.adapter_cells["train_manifest"])
    backend = f"{distinct(evaluations, 'backend')} ({distinct(evaluations, 'dtype')}); configured: {_settings(generation)}"
    return [
        ("run", f"{config.get('name', NOT_RECORDED)} (config fingerprint {distinct(evaluations, 'config_fingerprint')})"),
        ("toy model", "YES: numbers from a toy model organism" if data.is_toy else "no"),
        ("model", model.get("name_or_path") or distinct(evaluations, "model")),
        ("model revision", model.get("revision") or "not pinned (see fingerprint)"),
        ("model fingerprint", distinct(evaluations, "model_fingerprint")),
        ("training data", f"{task_data.get('source', NOT_RECORDED)} ({_settings(task_data, ('task', 'hf_config', 'split', 'limit'))})"),
        ("training data hash", distinct(trainings, "data_hash")),
        ("evaluation data", _eval_sources(config)),
        ("evaluation subsets", subsets_text(data)),
        ("objectives", _objectives(config)),
        ("budgets (tokens)", ", ".join(format_budget(b) for b in config.get("budgets") or []) or "-"),
        ("seeds", ", ".join(map(str, config.get("seeds") or [])) or "-"),
        ("LoRA", _settings(config.get("lora") or {})),
        ("optimizer", _settings(config.get("train") or {}, ("learning_rate", "schedule", "warmup_steps", "batch_size", "max_length"))),
        ("judge", _judge(data)),
        ("jailbreak scorers", _jailbreak_scorers(data)),
        ("jailbreak rubric", "; ".join(sorted({d.rubric for d in jailbreak_definitions(data) if d.rubric})) or "none (no judge scored the jailbreak axis)"),
        ("ASR definition", " ".join(asr_statements(data)) or NOT_RECORDED),
        ("translator", _translator(data)),
        *([("lm-evaluation-harness", _lm_eval(data))] if (data.config.get("eval") or {}).get("lm_eval") else []),
        ("generation backend", backend),
        ("devices", _devices(data)),
        ("software", _software(data)),
    ]


def cell_status(data: ReportData) -> pd.DataFrame:
    """Every cell of the grid with its status: finished (mode, tokens, finish time) or pending."""
    rows = []
    for _, cell in data.cells.iterrows():
        manifest = cell["train_manifest"]
        mode = cell["mode"] if isinstance(cell["mode"], str) else ("base model" if cell["kind"] == "base" else NOT_RECORDED)
        rows.append({
            "cell": cell["cell_id"], "status": "finished", "mode": mode,
            "budget_tokens": cell["budget_tokens"], "compute_tokens": cell["compute_tokens"],
            "steps": manifest.steps if manifest else None, "final_loss": manifest.final_loss if manifest else None,
            "finished_at": str(cell["finished_at"])[:19],
        })
    rows += [{"cell": label, "status": "pending"} for label in pending_cells(data)]
    return pd.DataFrame(rows, columns=CELL_STATUS_COLUMNS)


def skipped_notes(data: ReportData) -> pd.DataFrame:
    """Each figure that was not produced, why, and in how many cells (e.g. an attack without translator)."""
    skipped = data.metrics[data.metrics["status"] == "skipped"]
    groups = skipped.groupby(["axis", "metric", "group", "note"], sort=False)["cell_id"].nunique().reset_index(name="cells")
    groups["of"] = len(data.cells)
    return groups


def manifest_warnings(data: ReportData) -> list[str]:
    """Warnings the evaluation recorded (e.g. a fallback backend), each once."""
    warnings = [str(w) for info in data.cells["eval_manifest"] if info is not None for w in info.warnings]
    return list(dict.fromkeys(warnings))
