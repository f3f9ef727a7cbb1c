"""The evaluation's library entry point: one adapter (or the base model) on every configured axis.

``evaluate(config, session, adapter)`` measures capability, jailbreak attack success, persona
drift, over-refusal, the toxicity of generations and the configured lm-evaluation-harness tasks
for one adapter through a session that holds the base model, and returns an ``EvalResult``:
every figure with n, interval and method, every item record, and ``info`` (backend, judge,
seconds per phase, counts, the adapter's manifest, how lm-eval ran). ``evaluate_many`` does
the same for several adapters at once, decoding their prompts in shared mixed-adapter batches;
each result equals that of evaluating the adapter alone.

``write_result``/``read_result`` and ``compare_with_base`` (paired tests against the base
model's result) are re-exported here, so a caller needs one import.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from objlab.config import ExperimentConfig
from objlab.config.evaluation import EvalSettings
from objlab.errors import ConfigError
from objlab.evaluate.axes.capability import run_capability
from objlab.evaluate.axes.harness import run_lm_eval
from objlab.evaluate.axes.jailbreak import run_jailbreak
from objlab.evaluate.axes.overrefusal import run_overrefusal
from objlab.evaluate.axes.toxicity import run_toxicity
from objlab.faults import fault_point
from objlab.evaluate.axes.persona import run_persona
from objlab.evaluate.context import AxisOutput, EvalContext
from objlab.evaluate.results.compare import compare_with_base
from objlab.evaluate.results.eval_result import EvalResult, read_result, write_result
from objlab.evaluate.instruments import check_instruments, judge_for, translator_for
from objlab.scoring.cache import MemoryVerdictCache, VerdictCache
from objlab.evaluate.session import AdapterTarget, EvalSession
from objlab.progress import Board, board_or_quiet
from objlab.records.evaluation import EvalInfo

__all__ = ["EvalResult", "EvalSession", "compare_with_base", "evaluate", "evaluate_many", "read_result", "write_result"]

Phase = tuple[str, Callable[[EvalSettings], bool], Callable[[EvalContext, list[AdapterTarget]], dict[str, AxisOutput]]]
PHASES: list[Phase] = [
    ("capability", lambda settings: bool(settings.capability), run_capability),
    ("jailbreak", lambda settings: settings.jailbreak is not None, run_jailbreak),
    ("overrefusal", lambda settings: settings.overrefusal is not None, run_overrefusal),
    ("toxicity", lambda settings: settings.toxicity is not None, run_toxicity),
    ("persona", lambda settings: settings.persona is not None, run_persona),
    ("lm_eval", lambda settings: settings.lm_eval is not None, run_lm_eval),  # last: lm-eval seeds global RNGs (restored)
]


def _calls(ctx: EvalContext) -> dict[str, int]:
    judge = ctx.judge.client if ctx.judge else None
    translator = getattr(ctx.translator, "client", ctx.translator)  # a chat client, or the Python translator
    return {
        "judge_calls": getattr(judge, "calls", 0),
        "judge_retries": getattr(judge, "retries", 0),
        "translator_calls": getattr(translator, "calls", 0),
    }


def _info(config: ExperimentConfig, ctx: EvalContext, target: AdapterTarget, seconds: dict, calls: dict, together: int) -> EvalInfo:
    from objlab.environment import environment

    cache = ctx.judge.cache if ctx.judge else None
    return EvalInfo(**{
        **ctx.session.describe(),
        "config_name": config.name,
        "config_fingerprint": config.fingerprint(),
        "toy": config.toy,
        "adapter": target.describe(),
        "judge": ctx.judge.identity if ctx.judge else None,
        "translator": ctx.translator.identity if ctx.translator else None,
        "jailbreak": ctx.jailbreak,
        "subsets": dict(ctx.subsets),
        "seconds": seconds,
        "evaluated_together": together,
        "generations": ctx.counts[f"generations:{target.name}"],
        "generated_tokens": ctx.counts[f"generated_tokens:{target.name}"],
        "judge_errors": ctx.counts[f"judge_errors:{target.name}"],
        **calls,
        "verdict_cache": {"hits": cache.hits, "misses": cache.misses} if isinstance(cache, MemoryVerdictCache) else None,
        "lm_eval": ctx.lm_eval_runs.get(target.name),
        "warnings": list(ctx.session.warnings),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": environment(),
    })


def _load_targets(session: EvalSession, adapters: list[str | Path | None]) -> list[AdapterTarget]:
    if len(adapters) > session.max_loaded:
        raise ValueError(f"{len(adapters)} adapters in one call, the session keeps at most {session.max_loaded} loaded")
    targets: list[AdapterTarget] = []
    for adapter in adapters:
        targets.append(session.target(adapter, keep={target.name for target in targets}))
    if len({target.name for target in targets}) != len(targets):
        raise ValueError("the same adapter (or the base model) was given twice in one call")
    return targets


def evaluate_many(
    config: ExperimentConfig,
    session: EvalSession,
    adapters: list[str | Path | None],
    *,
    board: Board | None = None,
    verdict_cache: VerdictCache | None = None,
) -> list[EvalResult]:
    """Evaluate several adapters (None: the base model) together; one result each, in order."""
    if config.model != session.config.model:
        raise ConfigError(f"model: the session holds {session.config.model.name_or_path}, the config names {config.model.name_or_path}")
    settings = config.eval
    check_instruments(settings)
    cache = verdict_cache if verdict_cache is not None else MemoryVerdictCache()
    with board_or_quiet(board) as active:
        targets = _load_targets(session, adapters)
        ctx = EvalContext(session, settings, active, judge_for(session, settings, cache), translator_for(session, settings, cache), cache=cache)
        before = _calls(ctx)
        outputs = {target.name: AxisOutput() for target in targets}
        seconds = {}
        for axis, enabled, run in PHASES:
            if not enabled(settings):
                continue
            started = time.perf_counter()
            for name, output in run(ctx, targets).items():
                outputs[name].metrics += output.metrics
                outputs[name].items += output.items
            seconds[axis] = round(time.perf_counter() - started, 3)
            fault_point("evaluate.axis")
        calls = {key: value - before[key] for key, value in _calls(ctx).items()}
    return [
        EvalResult(outputs[t.name].metrics, outputs[t.name].items, _info(config, ctx, t, seconds, calls, len(targets)))
        for t in targets
    ]


def evaluate(
    config: ExperimentConfig,
    session: EvalSession,
    adapter: str | Path | None,
    *,
    board: Board | None = None,
    verdict_cache: VerdictCache | None = None,
) -> EvalResult:
    """Evaluate one adapter (None: the base model) on every configured axis."""
    return evaluate_many(config, session, [adapter], board=board, verdict_cache=verdict_cache)[0]
