"""The over-refusal axis end to end on a tiny model and XSTest's real prompts: a grid stores
the axis for the base model and every cell (with paired tests), and the summary and the report
show it, the ASR-vs-over-refusal frontier included."""

import json

from grids import grid_config
from tiny import SHARED_DATA, requires_shared

from objlab.config import load_config
from objlab.report.data import load_report_data
from objlab.report.html import write_report
from objlab.report.summary import compact_summary
from objlab.runner.execute import run_grid
from objlab.runner.plan import plan_evaluation
from objlab.store import ResultsStore

XSTEST = SHARED_DATA / "xstest" / "xstest_prompts.csv"


@requires_shared
def test_xstest_over_refusal_on_a_grid_of_a_tiny_model(tiny_model, tmp_path):
    config_path = grid_config(tmp_path, tiny_model, objectives={"sft": {}, "dpo": {}}, budgets=[600])
    data = load_config(config_path).model_dump(mode="json")
    data["eval"]["overrefusal"] = {"prompts": str(XSTEST), "limit": 24}
    config_path.write_text(json.dumps(data))
    config = load_config(config_path)
    plan = plan_evaluation(config, checkpoints=1)
    (tmp_path / "plain").mkdir()
    without = plan_evaluation(load_config(grid_config(tmp_path / "plain", tiny_model, objectives={"sft": {}}, budgets=[600])), checkpoints=1)
    assert plan.generations_per_checkpoint == without.generations_per_checkpoint + 24  # the axis's generations are counted

    run_dir = tmp_path / "run"
    assert not run_grid(config, run_dir).cells_failed
    with ResultsStore.in_run_dir(run_dir, read_only=True) as store:
        rows = store.frame("SELECT cell_id, metric, \"group\", value, n, comparison FROM metrics WHERE axis = 'overrefusal'")
        items = store.frame("SELECT cell_id, count(*) AS n FROM items WHERE axis = 'overrefusal' GROUP BY cell_id")
        summary = compact_summary(load_report_data(store), store)
    own = rows[rows["comparison"].isna()]
    for cell in ("base", "sft/seed-0/budget-600", "dpo/seed-0/budget-600"):
        mine = own[own["cell_id"] == cell].set_index(["metric", "group"])
        assert ("overrefusal", "") in mine.index and ("unsafe_compliance", "") in mine.index, cell
        assert 0 < mine.loc[("overrefusal", ""), "n"] < 24 and ("overrefusal", "homonyms") in mine.index
    assert set(items["n"]) == {24}
    tests = rows[rows["comparison"].notna()]
    assert set(tests["metric"]) >= {"overrefusal_vs_base", "unsafe_compliance_vs_base"}
    assert "over-refusal: share of safe prompts refused (refusal-rules" in " ".join(summary.split())
    page = write_report(run_dir).read_text()
    assert "Attack success vs over-refusal" in page and (run_dir / "report" / "asr_vs_overrefusal.png").is_file()
