"""The ``lm_eval`` axis: any lm-evaluation-harness task on every target, through lm-eval's own API.

The study checks that persona drift is not general degradation by measuring normative
benchmarks beside its own axes, and researchers bring their own suites (MMLU, ARC, domain
sets). lm-eval holds hundreds of such tasks as YAML (prompts, filters, metrics), so objlab runs
them rather than re-implementing any: for each target, ``simple_evaluate`` runs on
``SessionLM``, lm-eval's ``HFLM`` over the session's model with the target's adapter active,
with the chat template applied (few-shot examples as prior turns) as the other axes apply it.
``harness_results`` turns lm-eval's output into figures, items and provenance.

Tasks come from lm-eval's built-in index or from ``include_path`` (local YAML, offline with
``dataset_path: json`` and local ``data_files``). lm-eval is an optional extra: without it, a
config that asks for it fails with an error naming the extra.

lm-eval seeds Python's, NumPy's and torch's global generators; the axis restores their state
afterwards, so whatever runs next in the process (training the next unit) is unaffected.
"""

from __future__ import annotations

import contextlib
import logging
import random
from importlib import metadata

import numpy as np
import torch
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from objlab.config.evaluation import LmEvalSettings
from objlab.errors import ConfigError
from objlab.evaluate.context import AxisOutput, EvalContext
from objlab.evaluate.results.harness_results import HarnessOutput, convert
from objlab.evaluate.session import AdapterTarget, EvalSession
from objlab.records.evaluation import LmEvalRun

AXIS = "lm_eval"
SUPPORTED = SpecifierSet(">=0.4.8,<0.5")
INSTALL = "pip install 'objlab[lm-eval]'"
CPU_BATCH_SIZE = 16  # lm-eval's "auto" search runs full-length forwards: a GPU's business
BOOTSTRAP_ITERS = 100_000  # lm-eval's default (its stderr of non-mean aggregates)
DEFAULT_MAX_GEN_TOKS = 256  # HFLM's, for a generation task that sets no max_gen_toks
SEEDS = {"random_seed": 0, "numpy_random_seed": 1234, "torch_random_seed": 1234, "fewshot_random_seed": 1234}  # lm-eval's defaults


def require_lm_eval() -> str:
    """lm-eval's installed version; a ConfigError naming the extra when it is missing or not 0.4.x."""
    try:
        version = metadata.version("lm-eval")
    except metadata.PackageNotFoundError:
        raise ConfigError(
            f"eval.lm_eval: lm-evaluation-harness is not installed; install objlab's extra: {INSTALL}"
        ) from None
    if Version(version) not in SUPPORTED:
        raise ConfigError(f"eval.lm_eval: lm-eval {version} is installed, objlab's bridge needs lm-eval{SUPPORTED}: {INSTALL}")
    return version


@contextlib.contextmanager
def quiet_lm_eval():
    """lm-eval's logging below errors and datasets' progress bars off (objlab reports progress
    itself); both as they were afterwards."""
    import datasets

    logger = logging.getLogger("lm_eval")
    level, bars = logger.level, not datasets.are_progress_bars_disabled()
    logger.setLevel(logging.ERROR)
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        logger.setLevel(level)
        if bars:
            datasets.enable_progress_bars()


@contextlib.contextmanager
def preserved_random_state():
    """Python's, NumPy's and torch's global random state as they were before the block."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def _where(settings: LmEvalSettings) -> str:
    return f" (include_path: {settings.include_path})" if settings.include_path else ""


def _known(manager, settings: LmEvalSettings) -> bool:
    return all(manager.match_tasks([name]) for name in settings.tasks)


def _load_error(settings: LmEvalSettings, error: Exception) -> ConfigError:
    return ConfigError(f"eval.lm_eval.tasks: lm-eval could not load {', '.join(settings.tasks)}{_where(settings)}: "
                       f"{type(error).__name__}: {error}")


def _load(manager, settings: LmEvalSettings, *, missing_ok: bool = False) -> dict:
    """``manager.load`` of the configured names (lm-eval renders a first document's prompt, target
    and choices as it loads), with lm-eval's errors as config errors.

    With ``missing_ok`` a name lm-eval cannot resolve (a ``KeyError``: a group member outside
    this index) is raised as it is, for the caller to try a larger index.
    """
    unknown = [name for name in settings.tasks if not manager.match_tasks([name])]
    if unknown:
        raise ConfigError(f"eval.lm_eval.tasks: lm-eval knows no task, group or tag named {', '.join(unknown)}{_where(settings)}")
    try:
        loaded = manager.load(list(settings.tasks))
    except KeyError as error:
        if missing_ok:
            raise
        raise _load_error(settings, error) from None
    except Exception as error:  # the user's YAML, templates and data files: any failure is theirs to fix
        raise _load_error(settings, error) from None
    return loaded


def task_manager(settings: LmEvalSettings):
    """An lm-eval ``TaskManager`` that resolves every configured name, and the loaded tasks.

    Indexing lm-eval's hundreds of built-in YAML files takes seconds, so when ``include_path``
    holds every name asked for, only it is indexed (lm-eval's own index joins in when a local
    group names a built-in task). Loading and checking the tasks here finds a wrong name, YAML,
    template or data file before any model runs.
    """
    require_lm_eval()
    from lm_eval.tasks import TaskManager

    with quiet_lm_eval():
        if settings.include_path:
            local = TaskManager(include_path=settings.include_path, include_defaults=False)
            if _known(local, settings):
                try:
                    return local, _load(local, settings, missing_ok=True)
                except KeyError:
                    pass  # a group member lives in lm-eval's own index
        manager = TaskManager(include_path=settings.include_path)
        return manager, _load(manager, settings)


def batch_size(settings: LmEvalSettings, session: EvalSession) -> int | str:
    if settings.batch_size != "auto":
        return settings.batch_size
    return "auto" if session.device.type == "cuda" else CPU_BATCH_SIZE


def vocab_limit(session: EvalSession) -> int | None:
    """The original vocabulary size when control tokens were added to the model, else None."""
    rows = session.model.get_output_embeddings().weight.shape[0]
    return session.bundle.base_vocab_size if rows > session.bundle.base_vocab_size else None


def _prompt_transform(target: AdapterTarget) -> str | None:
    probe = "{prompt}"
    shown = target.eval_prompt(probe)
    return None if shown == probe else f"{target.objective}: the final user turn is presented as {shown!r}"


def evaluate_target(ctx: EvalContext, target: AdapterTarget, manager) -> dict:
    """lm-eval's ``simple_evaluate`` on ``target``: its raw result."""
    from lm_eval import simple_evaluate

    from objlab.evaluate.backends.harness_lm import SessionLM

    settings, session = ctx.settings.lm_eval, ctx.session
    line = ctx.board.line(f"lm-eval {'base model' if target.is_base else target.name}", None)
    try:
        with quiet_lm_eval(), session.activated(target) as model:
            lm = SessionLM(model, session.tokenizer, batch_size=batch_size(settings, session), vocab_limit=vocab_limit(session),
                           present=target.eval_prompt, progress=line.advance)
            return simple_evaluate(
                model=lm, tasks=list(settings.tasks), num_fewshot=settings.num_fewshot, limit=settings.limit,
                task_manager=manager, apply_chat_template=True, fewshot_as_multiturn=True, log_samples=True,
                bootstrap_iters=BOOTSTRAP_ITERS, **SEEDS,
            )
    finally:
        line.close()


def run_record(ctx: EvalContext, target: AdapterTarget, converted: HarnessOutput) -> LmEvalRun:
    """How the axis ran for ``target``: versions, settings, each task's version and config."""
    settings, session = ctx.settings.lm_eval, ctx.session
    return LmEvalRun(
        lm_eval_version=require_lm_eval(), requested=list(settings.tasks), preset=settings.preset, top_level=converted.top_level,
        include_path=settings.include_path, num_fewshot=settings.num_fewshot, limit=settings.limit,
        batch_size=batch_size(settings, session), prompt_transform=_prompt_transform(target), vocab_limit=vocab_limit(session),
        bootstrap_iters=BOOTSTRAP_ITERS, seeds=dict(SEEDS), tasks=converted.tasks,
    )


def run_lm_eval(ctx: EvalContext, targets: list[AdapterTarget]) -> dict[str, AxisOutput]:
    """Every configured lm-eval task for every target (one ``simple_evaluate`` per target)."""
    settings = ctx.settings.lm_eval
    scorer = f"lm-eval {require_lm_eval()}"
    results = {}
    with preserved_random_state():
        manager = ctx.session.shared(f"lm_eval:{settings!r}", lambda: task_manager(settings)[0])
        for target in targets:
            converted = convert(evaluate_target(ctx, target, manager), scorer, settings.tasks)
            ctx.lm_eval_runs[target.name] = run_record(ctx, target, converted)
            results[target.name] = AxisOutput(converted.metrics, converted.items)
    return results


def count_requests(settings: LmEvalSettings) -> tuple[dict[str, int], int]:
    """Requests one evaluation sends, by request type, and the most tokens its generations may
    produce: from the very tasks and ``limit`` a run uses (few-shot examples change the
    prompts, not the count)."""
    from lm_eval.evaluator_utils import get_sample_size

    _, loaded = task_manager(settings)
    requests: dict[str, int] = {}
    generated = 0
    with quiet_lm_eval():
        for task in loaded["tasks"].values():
            task.build_all_requests(limit=get_sample_size(task, settings.limit), rank=0, world_size=1)
            for instance in task.instances:
                requests[instance.request_type] = requests.get(instance.request_type, 0) + instance.repeats
                if instance.request_type == "generate_until":
                    generated += instance.repeats * int(instance.args[1].get("max_gen_toks", DEFAULT_MAX_GEN_TOKS))
    return requests, generated
