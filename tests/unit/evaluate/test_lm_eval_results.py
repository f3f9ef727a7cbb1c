"""lm-eval's results as objlab's figures and items (intervals against independent references,
groups, figures lm-eval gives no stderr for), the paired lm-eval tests against the base model,
the eval.lm_eval config, and its errors: a wrong task, a broken template, the missing extra."""

import copy
import hashlib
import json
import math
from importlib import metadata

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as statsmodels_mcnemar
from statsmodels.stats.proportion import proportion_confint
from tiny import ANSWER_TASK, CHOICE_TASK, DOCUMENTS, write_config, write_lm_eval_tasks
from typer.testing import CliRunner

from objlab.cli import app
from objlab.config import load_config, parse_config
from objlab.config.evaluation import LmEvalSettings
from objlab.config.experiment import canonical_json
from objlab.errors import ConfigError
from objlab.evaluate.axes import harness
from objlab.evaluate.results.compare import compare_with_base
from objlab.evaluate.results.eval_result import EvalResult
from objlab.evaluate.results.harness_results import convert
from objlab.records.items import ItemRecord
from objlab.runner.guard import config_changes, guard_config
from objlab.store import ResultsStore

lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is objlab's optional extra objlab[lm-eval] (the test extra installs it)")

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
GROUP = "bridge_group"
GROUP_YAML = f"""group: {GROUP}
task:
  - {CHOICE_TASK}
  - {CHOICE_TASK}_copy
aggregate_metric_list:
  - metric: acc
    aggregation: mean
    weight_by_size: true
metadata:
  version: 3
"""


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    directory = write_lm_eval_tasks(tmp_path_factory.mktemp("lm-eval-tasks"))
    write_lm_eval_tasks(directory, suffix="_copy")
    (directory / "group.yaml").write_text(GROUP_YAML)
    return directory


def simple_evaluate(model_dir, tasks, names, **kwargs) -> dict:
    """lm-eval's own run on the tiny model (HFLM over a model instance, chat template applied)."""
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers import AutoModelForCausalLM, AutoTokenizer

    lm = HFLM(pretrained=AutoModelForCausalLM.from_pretrained(model_dir), tokenizer=AutoTokenizer.from_pretrained(model_dir), batch_size=4)
    return lm_eval.simple_evaluate(model=lm, tasks=names, task_manager=TaskManager(include_path=str(tasks), include_defaults=False),
                                   apply_chat_template=True, fewshot_as_multiturn=True, log_samples=True, **kwargs)


@pytest.fixture(scope="module")
def raw(tiny_model, tasks):
    return simple_evaluate(tiny_model, tasks, [GROUP, ANSWER_TASK])


def per_document(output, row) -> list[float]:
    return [item.extra["values"][row.metric] for item in output.items if item.group == row.group and row.metric in item.extra["values"]]


def test_figures_carry_lm_evals_stderr_as_a_clipped_normal_interval(raw):
    output = convert(raw, "lm-eval")
    task_rows = [row for row in output.metrics if row.group != GROUP]
    assert {(row.group, row.metric) for row in task_rows} == {
        (task, metric) for task in (CHOICE_TASK, f"{CHOICE_TASK}_copy") for metric in ("acc,none", "acc_norm,none")
    } | {(ANSWER_TASK, "exact_match,strict-match")}
    for row in task_rows:
        values = per_document(output, row)
        assert row.n == len(values) == DOCUMENTS
        assert row.value == pytest.approx(np.mean(values))
        stderr = np.std(values, ddof=1) / math.sqrt(len(values))  # the sample standard error, computed here
        assert raw["results"][row.group][row.metric.replace(",", "_stderr,")] == pytest.approx(stderr)
        assert (row.ci_low, row.ci_high) == pytest.approx((max(0.0, row.value - Z95 * stderr), min(1.0, row.value + Z95 * stderr)))
        assert "lm-eval stderr" in row.method and "clipped to [0, 1]" in row.method


def test_a_group_is_top_level_with_its_pooled_figure_and_no_items_of_its_own(raw):
    output = convert(raw, "lm-eval", [GROUP, ANSWER_TASK])
    assert output.top_level == [GROUP, ANSWER_TASK]
    assert convert(raw, "lm-eval", [ANSWER_TASK, GROUP]).top_level == [ANSWER_TASK, GROUP]
    group = next(row for row in output.metrics if row.group == GROUP)
    pooled = [value for task in (CHOICE_TASK, f"{CHOICE_TASK}_copy") for value in
              (item.extra["values"]["acc,none"] for item in output.items if item.group == task)]
    assert (group.metric, group.n, group.value) == ("acc,none", 2 * DOCUMENTS, pytest.approx(np.mean(pooled)))
    assert group.ci_low < group.value < group.ci_high or group.ci_low == group.value == group.ci_high
    records = {task.name: task for task in output.tasks}
    assert records[GROUP].kind == "group" and records[GROUP].subtasks == [CHOICE_TASK, f"{CHOICE_TASK}_copy"]
    assert records[GROUP].version == "3" and records[CHOICE_TASK].version == "1.5" and records[CHOICE_TASK].kind == "task"
    assert not [item for item in output.items if item.group == GROUP]


def test_without_a_stderr_the_interval_comes_from_the_per_document_scores(tiny_model, tasks):
    raw = simple_evaluate(tiny_model, tasks, [CHOICE_TASK], bootstrap_iters=0)
    assert raw["results"][CHOICE_TASK]["acc_stderr,none"] == "N/A"
    output = convert(raw, "lm-eval")
    row = next(row for row in output.metrics if row.metric == "acc,none")
    correct = int(sum(per_document(output, row)))
    assert (row.ci_low, row.ci_high) == pytest.approx(proportion_confint(correct, DOCUMENTS, method="wilson"))
    assert "Wilson" in row.method and "no stderr" in row.method

    graded = copy.deepcopy(raw)  # per-document scores that are not 0/1: a bootstrap interval of their mean
    scores = [0.25 * (index % 4) for index in range(DOCUMENTS)]
    for sample, score in zip(graded["samples"][CHOICE_TASK], scores):
        sample["acc"] = score
    graded["results"][CHOICE_TASK]["acc,none"] = float(np.mean(scores))
    row = next(row for row in convert(graded, "lm-eval").metrics if row.metric == "acc,none")
    assert "bootstrap" in row.method and row.ci_low < np.mean(scores) < row.ci_high

    corpus = copy.deepcopy(raw)  # a figure that is not the mean of its per-document values: no interval, said so
    corpus["results"][CHOICE_TASK]["acc,none"] = 0.123
    row = next(row for row in convert(corpus, "lm-eval").metrics if row.metric == "acc,none")
    assert math.isnan(row.ci_low) and "not a mean of per-document scores" in row.note


def lm_eval_item(document: int, values: dict) -> ItemRecord:
    return ItemRecord("lm_eval", "task", f"{document},none", "prompt", "output", 0.0, extra={"values": values})


def test_paired_tests_against_the_base_model_use_mcnemar_for_0_1_and_t_otherwise():
    cell_correct, base_correct = [1, 1, 1, 0, 1, 1, 0, 1], [0, 0, 1, 0, 0, 1, 0, 0]
    cell_score = [0.9, 0.8, 0.7, 0.6, 0.9, 0.5, 0.4, 0.8]
    base_score = [0.5, 0.6, 0.7, 0.2, 0.3, 0.5, 0.1, 0.4]
    cell = EvalResult(items=[lm_eval_item(i, {"acc,none": c, "score,none": s, "bleu,none": ["ref", "pred"]})
                             for i, (c, s) in enumerate(zip(cell_correct, cell_score))])
    base = EvalResult(items=[lm_eval_item(i, {"acc,none": c, "score,none": s, "bleu,none": ["ref", "pred"]})
                             for i, (c, s) in enumerate(zip(base_correct, base_score))])
    rows = {row.metric: row for row in compare_with_base(cell, base)}
    assert set(rows) == {"acc,none_vs_base", "score,none_vs_base"}  # per-document values that are not numbers: no test
    table = [[sum(c and b for c, b in zip(cell_correct, base_correct)), sum(c and not b for c, b in zip(cell_correct, base_correct))],
             [sum(b and not c for c, b in zip(cell_correct, base_correct)), sum(not c and not b for c, b in zip(cell_correct, base_correct))]]
    p_mcnemar = statsmodels_mcnemar(table, exact=True).pvalue
    p_t = stats.ttest_rel(cell_score, base_score).pvalue
    assert rows["acc,none_vs_base"].note == f"unadjusted p = {p_mcnemar:.4g}"
    assert rows["score,none_vs_base"].note == f"unadjusted p = {p_t:.4g}"
    assert rows["acc,none_vs_base"].value == pytest.approx(np.mean(cell_correct) - np.mean(base_correct))
    holm = sorted([p_mcnemar, p_t])
    assert sorted(row.p_value for row in rows.values()) == pytest.approx([2 * holm[0], max(2 * holm[0], holm[1])])
    assert all("Holm-adjusted over 2 lm-eval figures" in row.comparison for row in rows.values())


BASE = {"model": {"name_or_path": "m"}, "data": {"source": "d.jsonl"}, "objectives": ["sft"], "budgets": [100]}


@pytest.mark.parametrize(("lm_eval_section", "message"), [
    ({"tasks": []}, "eval.lm_eval.tasks"),
    ({"tasks": ["a", "a"]}, "named twice"),
    ({"tasks": ["a"], "limit": 2.5}, "eval.lm_eval.limit"),
    ({"tasks": ["a"], "batch_size": 0}, "eval.lm_eval.batch_size"),
    ({"tasks": ["a"], "num_fewshot": -1}, "eval.lm_eval.num_fewshot"),
    ({"tasks": ["a"], "include": "x"}, "eval.lm_eval.include"),
])
def test_the_lm_eval_section_is_validated(lm_eval_section, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config({**BASE, "eval": {"lm_eval": lm_eval_section}})


def test_limits_and_the_include_path_are_read_as_lm_eval_reads_them(tmp_path, tiny_model):
    assert parse_config({**BASE, "eval": {"lm_eval": {"tasks": ["a"], "limit": 3.0}}}).eval.lm_eval.limit == 3
    assert parse_config({**BASE, "eval": {"lm_eval": {"tasks": ["a"], "limit": 0.5}}}).eval.lm_eval.limit == 0.5
    (tmp_path / "my_tasks").mkdir()
    config = load_config(write_config(tmp_path / "config.yaml", tiny_model, eval={"lm_eval": {"tasks": ["a"], "include_path": "my_tasks"}}))
    assert config.eval.lm_eval.include_path == str(tmp_path / "my_tasks")


def test_configs_without_lm_eval_keep_their_fingerprint_and_resume(tmp_path):
    config = parse_config(BASE)
    before = config.model_dump(mode="json")
    for key in ("lm_eval", "overrefusal", "toxicity"):  # the config as it was stored before these sections existed
        del before["eval"][key]
    del before["data"]["where"], before["data"]["holdout"]  # (and before row selection existed)
    del before["models"]  # (and before the models axis)
    assert config.fingerprint() == hashlib.sha256(canonical_json(before).encode()).hexdigest()[:16]
    assert config_changes(before, config.model_dump(mode="json")) == []
    with ResultsStore(tmp_path / "r.duckdb") as store:
        store.set_meta("config", json.dumps(before, sort_keys=True))
        assert guard_config(store, config, "run") == "new run"
    with_lm_eval = parse_config({**BASE, "eval": {"lm_eval": {"tasks": ["a"]}}})
    assert with_lm_eval.fingerprint() != config.fingerprint()
    changes = config_changes(before, with_lm_eval.model_dump(mode="json"))
    assert "eval.lm_eval.tasks: '(absent)' -> ['a']" in changes and all(change.startswith("eval.lm_eval.") for change in changes)


def test_a_missing_or_unsupported_lm_eval_names_the_extra(tmp_path, tiny_model, monkeypatch):
    config = write_config(tmp_path / "config.yaml", tiny_model, eval={"lm_eval": {"tasks": ["a"]}})

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(harness.metadata, "version", missing)
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "pip install 'objlab[lm-eval]'" in result.output
    assert not (tmp_path / "run").exists()  # refused before anything ran
    monkeypatch.setattr(harness.metadata, "version", lambda name: "0.5.1")
    with pytest.raises(ConfigError, match=r"lm-eval 0\.5\.1 is installed.*<0\.5.*objlab\[lm-eval\]"):
        harness.require_lm_eval()


def test_a_wrong_task_name_broken_template_or_missing_data_is_a_config_error(tasks, tmp_path):
    with pytest.raises(ConfigError, match=rf"no task, group or tag named no_such_task \(include_path: {tasks}\)"):
        harness.task_manager(LmEvalSettings(tasks=["no_such_task"], include_path=str(tasks)))
    broken = tmp_path / "broken"
    write_lm_eval_tasks(broken)
    text = (broken / f"{CHOICE_TASK}.yaml").read_text()
    (broken / f"{CHOICE_TASK}.yaml").write_text(text.replace("{{question}}", "{{quesion}}"))
    with pytest.raises(ConfigError, match=rf"could not load {CHOICE_TASK} \(include_path: {broken}\): UndefinedError: 'quesion' is undefined"):
        harness.task_manager(LmEvalSettings(tasks=[CHOICE_TASK], include_path=str(broken)))
    (broken / "answer.jsonl").unlink()
    with pytest.raises(ConfigError, match=rf"could not load {ANSWER_TASK}"):
        harness.task_manager(LmEvalSettings(tasks=[ANSWER_TASK], include_path=str(broken)))
