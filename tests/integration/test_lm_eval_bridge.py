"""The lm-evaluation-harness bridge end to end: two lm-eval tasks written here (a multiple-choice
and a generation task over local JSON files) run on every cell of a grid through `objlab run`;
their figures land in the store, the report and `objlab results`, and equal lm-eval's own
`simple_evaluate` on the same merged model (CFT's control token and vocabulary included)."""

import json
import math

import pytest
import torch
from tiny import ANSWER_TASK, CHOICE_TASK, DOCUMENTS, write_config, write_lm_eval_tasks
from typer.testing import CliRunner

from objlab.cli import app
from objlab.store import BASE_CELL, ResultsStore

lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is objlab's optional extra objlab[lm-eval] (the test extra installs it)")

TRAIN = {"batch_size": 2, "warmup_steps": 1, "checkpoint_every": 4, "max_length": 256}
BATCH_SIZE = 4
SAFE = "<SAFE>"  # CFT's evaluation control token (DESIGN: evaluation prepends <SAFE>)


@pytest.fixture(scope="module")
def grid(tmp_path_factory, tiny_model):
    """One `objlab run` of sft and cft at one budget with only the lm_eval axis."""
    root = tmp_path_factory.mktemp("lm-eval-grid")
    tasks = write_lm_eval_tasks(root / "tasks")
    config = write_config(
        root / "config.yaml", tiny_model,
        objectives={"sft": {}, "cft": {}}, budgets=[600], train=TRAIN,
        eval={"generation": {"backend": "hf"},
              "lm_eval": {"tasks": [CHOICE_TASK, ANSWER_TASK], "include_path": str(tasks), "batch_size": BATCH_SIZE}},
    )
    run_dir = root / "run"
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    with ResultsStore.in_run_dir(run_dir, read_only=True) as store:
        cells = {row[0]: row[1] for row in store.db.execute("SELECT cell_id, objective FROM cells").fetchall()}
        stored = {cell: (store.cell_metrics(cell), store.cell_items(cell)) for cell in cells}
        manifests = dict(store.db.execute("SELECT cell_id, eval_manifest FROM cells").fetchall())
    return {"root": root, "config": config, "run_dir": run_dir, "cells": cells, "stored": stored,
            "manifests": {cell: json.loads(text) for cell, text in manifests.items()}, "output": result.output}


def cell_of(grid, objective):
    return next(cell for cell, name in grid["cells"].items() if name == objective)


def adapter_dir(grid, objective):
    return grid["run_dir"] / "adapters" / objective / "seed-0" / "budget-600"


def reference(model, tokenizer, include_path, tasks):
    """lm-eval's own evaluation of a merged model: no objlab code involved."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=BATCH_SIZE)
    return simple_evaluate(model=lm, tasks=tasks, task_manager=TaskManager(include_path=str(include_path), include_defaults=False),
                           apply_chat_template=True, fewshot_as_multiturn=True, log_samples=True)


def assert_equal_to_reference(metrics, items, raw, rename=lambda name: name):
    """Every stored lm_eval figure and item equals lm-eval's own result (float tolerance)."""
    own = [row for row in metrics if row.axis == "lm_eval" and row.comparison is None]
    assert {(row.group, row.metric) for row in own} == {
        (CHOICE_TASK, "acc,none"), (CHOICE_TASK, "acc_norm,none"), (ANSWER_TASK, "exact_match,strict-match")}
    for row in own:
        entry = raw["results"][rename(row.group)]
        assert row.value == pytest.approx(entry[row.metric], abs=1e-9)
        stderr = entry[row.metric.replace(",", "_stderr,")]
        assert row.n == DOCUMENTS
        assert (row.ci_high - row.ci_low) == pytest.approx(min(row.value + 1.96 * stderr, 1) - max(row.value - 1.96 * stderr, 0), abs=1e-3)
    for task in (CHOICE_TASK, ANSWER_TASK):
        samples = {sample["doc_id"]: sample for sample in raw["samples"][rename(task)]}
        mine = [item for item in items if item.axis == "lm_eval" and item.group == task]
        assert len(mine) == DOCUMENTS
        for item in mine:
            sample = samples[item.extra["doc_id"]]
            assert item.prompt == sample["arguments"][0][0]
            if task == CHOICE_TASK:
                logprobs = [pair[0] for pair in json.loads(item.output)]
                assert logprobs == pytest.approx([resp[0][0] for resp in sample["resps"]], abs=1e-4)
                assert item.extra["values"]["acc,none"] == sample["acc"]
            else:
                assert item.output == sample["resps"][0][0]
                assert item.extra["values"]["exact_match,strict-match"] == sample["exact_match"]


def base_model_and_tokenizer(model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)


@pytest.mark.slow
def test_base_and_sft_figures_equal_simple_evaluate_on_the_merged_model(grid, tiny_model):
    from peft import PeftModel

    tasks = grid["root"] / "tasks"
    model, tokenizer = base_model_and_tokenizer(tiny_model)
    assert_equal_to_reference(*grid["stored"][BASE_CELL], reference(model, tokenizer, tasks, [CHOICE_TASK, ANSWER_TASK]))
    cell = cell_of(grid, "sft")
    merged = PeftModel.from_pretrained(model, adapter_dir(grid, grid["cells"][cell])).merge_and_unload()
    assert_equal_to_reference(*grid["stored"][cell], reference(merged, tokenizer, tasks, [CHOICE_TASK, ANSWER_TASK]))


@pytest.mark.slow
def test_cft_prompts_carry_the_control_token_and_equal_the_merged_reference(grid, tiny_model, tmp_path):
    """CFT evaluates with <SAFE> before the user turn and over the original vocabulary: the
    reference is the merged CFT model with its output layer cut to that vocabulary, on the same
    tasks with <SAFE> written into their prompt template."""
    from peft import PeftModel

    cell = cell_of(grid, "cft")
    metrics, items = grid["stored"][cell]
    assert all(f"{SAFE} " in item.prompt for item in items if item.axis == "lm_eval")
    model, tokenizer = base_model_and_tokenizer(tiny_model)
    base_vocab = model.get_output_embeddings().weight.shape[0]
    tokenizer.add_special_tokens({"additional_special_tokens": [SAFE, "<UNSAFE>"]}, replace_extra_special_tokens=False)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    merged = PeftModel.from_pretrained(model, adapter_dir(grid, grid["cells"][cell])).merge_and_unload()
    head = torch.nn.Linear(merged.config.hidden_size, base_vocab, bias=False)
    head.weight = torch.nn.Parameter(merged.get_output_embeddings().weight[:base_vocab].detach().clone())
    merged.set_output_embeddings(head)
    tasks = write_lm_eval_tasks(tmp_path / "safe", prefix=f"{SAFE} ", suffix="_safe")
    raw = reference(merged, tokenizer, tasks, [CHOICE_TASK + "_safe", ANSWER_TASK + "_safe"])
    assert_equal_to_reference(metrics, items, raw, rename=lambda name: name + "_safe")
    info = grid["manifests"][cell]["lm_eval"]
    assert info["vocab_limit"] == base_vocab and SAFE in info["prompt_transform"]


@pytest.mark.slow
def test_paired_tests_against_the_base_model_on_the_same_documents(grid):
    from objlab.evaluate.results.stats import mcnemar

    cell = cell_of(grid, "sft")
    metrics, items = grid["stored"][cell]
    base_items = {item.item_id: item for item in grid["stored"][BASE_CELL][1] if item.group == CHOICE_TASK}
    test = next(row for row in metrics if row.metric == "acc,none_vs_base" and row.group == CHOICE_TASK)
    mine = sorted((item for item in items if item.group == CHOICE_TASK), key=lambda item: item.item_id)
    expected = mcnemar([item.extra["values"]["acc,none"] for item in mine],
                       [base_items[item.item_id].extra["values"]["acc,none"] for item in mine])
    assert (test.value, test.n, test.ci_low, test.ci_high) == pytest.approx((expected.mean_difference, DOCUMENTS, expected.ci_low, expected.ci_high))
    assert "lm-eval figures" in test.comparison and test.p_value >= expected.p_value
    assert {row.metric for row in metrics if row.comparison} >= {"acc,none_vs_base", "acc_norm,none_vs_base", "exact_match,strict-match_vs_base"}


@pytest.mark.slow
def test_manifest_records_lm_eval_version_task_versions_and_configs(grid):
    for cell, manifest in grid["manifests"].items():
        run = manifest["lm_eval"]
        assert run["lm_eval_version"] == lm_eval.__version__
        assert run["requested"] == run["top_level"] == [CHOICE_TASK, ANSWER_TASK]
        tasks = {task["name"]: task for task in run["tasks"]}
        assert (tasks[CHOICE_TASK]["version"], tasks[ANSWER_TASK]["version"]) == ("1.5", "2.0")
        assert tasks[ANSWER_TASK]["config"]["generation_kwargs"]["max_gen_toks"] == 6
        assert tasks[CHOICE_TASK]["config"]["metadata"]["config_source"].endswith(f"{CHOICE_TASK}.yaml")
        assert tasks[CHOICE_TASK]["evaluated"] == DOCUMENTS and run["batch_size"] == BATCH_SIZE
        assert (run["prompt_transform"] is None) == (grid["cells"][cell] != "cft")


@pytest.mark.slow
def test_report_and_results_show_each_task_per_cell(grid):
    html = (grid["run_dir"] / "report" / "report.html").read_text()
    assert (grid["run_dir"] / "report" / "lm_eval_vs_budget.png").is_file()
    section = html.split('<section id="lm_eval_vs_budget">')[1].split("</section>")[0]
    assert "Not drawn" not in section
    for cell in grid["cells"]:
        for label in (f"acc,none ({CHOICE_TASK})", f"exact_match,strict-match ({ANSWER_TASK})"):
            assert f"<td>{cell}</td><td>{label}</td>" in section
    assert "lm-eval " + lm_eval.__version__ in html
    result = CliRunner().invoke(app, ["results", str(grid["run_dir"])], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert CHOICE_TASK in result.output and ANSWER_TASK in result.output


@pytest.mark.slow
def test_plan_counts_lm_eval_requests(grid):
    result = CliRunner().invoke(app, ["run", str(grid["config"]), "--out", str(grid["root"] / "planned"), "--plan"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    # 6 documents x 3 choices log-likelihoods, 6 generations of at most 6 tokens
    assert f"lm-eval per checkpoint: {DOCUMENTS * 3} loglikelihood, {DOCUMENTS} generate_until requests" in result.output
    assert f"up to {DOCUMENTS * 6} new tokens" in result.output


@pytest.mark.slow
def test_an_evaluation_is_deterministic_and_leaves_the_random_state_alone(grid, tiny_model):
    import random

    from objlab.config import load_config
    from objlab.evaluate.evaluator import EvalSession, evaluate

    config = load_config(grid["config"])
    session = EvalSession(config)
    random.seed(7)
    torch.manual_seed(7)
    first = evaluate(config, session, None)
    after = (random.random(), torch.rand(1).item())
    random.seed(7)
    torch.manual_seed(7)
    expected = (random.random(), torch.rand(1).item())
    assert after == expected
    second = evaluate(config, session, None)
    assert [row for row in first.metrics] == [row for row in second.metrics]
    assert [item.output for item in first.items] == [item.output for item in second.items]
    stored = {(row.group, row.metric): row.value for row in grid["stored"][BASE_CELL][0] if row.comparison is None}
    assert {(row.group, row.metric): row.value for row in first.metrics} == pytest.approx(stored)
    assert not any(math.isnan(row.ci_low) for row in first.metrics)


@pytest.mark.slow
def test_demo_organism_with_its_lm_eval_tasks_runs_end_to_end(organism, tmp_path, monkeypatch):
    """`objlab demo --lm-eval` on the test organism (one objective at one budget, to stay short):
    objlab's own lm-eval tasks over the organism's held-out arithmetic reach every cell, the
    store and the report."""
    import yaml

    from objlab.organism import demo

    monkeypatch.setenv("OBJLAB_CACHE", str(organism.root.parent.parent))
    monkeypatch.setattr(demo, "DEMO_OBJECTIVES", {"sft": {}})
    monkeypatch.setitem(demo.DEMO_BUDGETS, "test", [600])
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--size", "test", "--lm-eval", "--out", str(out)])
    assert result.exit_code == 0, result.output
    settings = yaml.safe_load((out / "demo.yaml").read_text())["eval"]["lm_eval"]
    assert settings["tasks"] == list(demo.LM_EVAL_TASKS) and settings["include_path"] == str(out / "lm_eval_tasks")
    assert str(organism.heldout_arithmetic_path) in (out / "lm_eval_tasks" / "organism_arithmetic_choice.yaml").read_text()
    figures = {("organism_arithmetic_choice", "acc,none"), ("organism_arithmetic_choice", "acc_norm,none"),
               ("organism_arithmetic_answer", "exact_match,strict-match")}
    with ResultsStore.in_run_dir(out, read_only=True) as store:
        cells = [row[0] for row in store.db.execute("SELECT cell_id FROM cells").fetchall()]
        for cell in cells:
            rows = {(row.group, row.metric): row for row in store.cell_metrics(cell) if row.axis == "lm_eval" and row.comparison is None}
            assert set(rows) == figures
            assert all(row.n == demo.EVAL_LIMITS["test"]["arithmetic"] and row.ci_low <= row.value <= row.ci_high for row in rows.values())
    assert sorted(cells) == [BASE_CELL, "sft/seed-0/budget-600"]
    section = (out / "report" / "report.html").read_text().split('<section id="lm_eval_vs_budget">')[1].split("</section>")[0]
    assert "Not drawn" not in section
    for cell in cells:
        assert f"<td>{cell}</td><td>acc,none (organism_arithmetic_choice)</td>" in section
        assert f"<td>{cell}</td><td>exact_match,strict-match (organism_arithmetic_answer)</td>" in section
