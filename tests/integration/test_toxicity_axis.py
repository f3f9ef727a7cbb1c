"""The toxicity axis end to end on a tiny model: ToxiGen-format prompt files continued by the base
model and every cell of a grid, each generation scored by a tiny RoBERTa classifier standing in
for ToxiGen's (loaded once per session as a sequence classifier); the grid stores the axis with
its paired tests, `run --plan` counts its generations, and the summary and the report show it."""

import json

from grids import grid_config
from tiny_classifier import build_tiny_classifier

from objlab.config import load_config
from objlab.report.data import load_report_data
from objlab.report.html import write_report
from objlab.report.summary import compact_summary
from objlab.runner.execute import run_grid
from objlab.runner.plan import plan_evaluation
from objlab.store import ResultsStore


def toxigen_folder(folder):
    """Three ToxiGen prompt files in the published format (one prompt a line, escaped line breaks)."""
    folder.mkdir()
    for name, group in (("hate_asian_1k.txt", "asian"), ("hate_women_1k.txt", "women"), ("neutral_women_1k.txt", "women")):
        lines = [("".join(f"- statement {i}.{j} about {group}\n" for j in range(3)) + "-").__repr__()[1:-1] for i in range(4)]
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def test_toxicity_of_generations_on_a_grid_of_a_tiny_model(tiny_model, tmp_path, monkeypatch):
    from objlab.evaluate import session as session_module

    loads = []
    real_loader = session_module.load_sequence_classifier
    monkeypatch.setattr(session_module, "load_sequence_classifier", lambda name, device: loads.append(name) or real_loader(name, device))
    classifier = build_tiny_classifier(tmp_path / "classifier")
    config_path = grid_config(tmp_path, tiny_model, objectives={"sft": {}, "dpo": {}}, budgets=[600])
    data = load_config(config_path).model_dump(mode="json")
    data["eval"]["toxicity"] = {"prompts": str(toxigen_folder(tmp_path / "prompts")), "limit": 9,
                                "scorer_options": {"toxigen_roberta": {"model": str(classifier)}}}
    config_path.write_text(json.dumps(data))
    config = load_config(config_path)
    plan = plan_evaluation(config, checkpoints=1)
    (tmp_path / "plain").mkdir()
    without = plan_evaluation(load_config(grid_config(tmp_path / "plain", tiny_model, objectives={"sft": {}}, budgets=[600])), checkpoints=1)
    assert plan.generations_per_checkpoint == without.generations_per_checkpoint + 9  # the axis's generations are counted

    run_dir = tmp_path / "run"
    assert not run_grid(config, run_dir).cells_failed
    assert loads == [str(classifier)]  # once per session, shared by the base model and every cell
    with ResultsStore.in_run_dir(run_dir, read_only=True) as store:
        rows = store.frame("SELECT cell_id, metric, \"group\", value, n, comparison FROM metrics WHERE axis = 'toxicity'")
        items = store.frame("SELECT cell_id, item_id, prompt, output, scorer, extra FROM items WHERE axis = 'toxicity'")
        summary = compact_summary(load_report_data(store), store)
    own = rows[rows["comparison"].isna()]
    for cell in ("base", "sft/seed-0/budget-600", "dpo/seed-0/budget-600"):
        mine = own[own["cell_id"] == cell].set_index(["metric", "group"])
        assert {("toxic_rate", ""), ("toxic_rate", "asian"), ("toxic_rate", "women"), ("toxic_rate", "label:neutral"),
                ("toxicity_mean", "")} <= set(mine.index), cell
        assert mine.loc[("toxic_rate", ""), "n"] == 9 and 0 <= mine.loc[("toxicity_mean", ""), "value"] <= 1
    assert set(items.groupby("cell_id").size()) == {9} and set(items["scorer"]) == {f"toxigen_roberta:{classifier}#v1"}
    assert items["prompt"].str.contains("Complete the following: - statement", regex=False).all()
    assert all(json.loads(extra)["p_toxic"] is not None for extra in items["extra"])
    assert len(set(items["item_id"])) == 9  # the same prompts for the base model and every cell
    tests = rows[rows["comparison"].notna()]
    assert {"toxic_rate_vs_base"} == set(tests["metric"]) and set(tests["cell_id"]) == {"sft/seed-0/budget-600", "dpo/seed-0/budget-600"}
    assert "toxicity: share of generations on ToxiGen prompts scored toxic (toxigen_roberta:" in " ".join(summary.split())
    page = write_report(run_dir).read_text()
    assert "Toxicity of generations vs budget" in page and (run_dir / "report" / "toxicity_vs_budget.png").is_file()
    assert f"toxicity prompts (ToxiGen format): {tmp_path / 'prompts'}" in page
