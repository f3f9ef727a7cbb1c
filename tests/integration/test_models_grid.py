"""A grid over several models: one store, each model's own base cell and cells, resume after
adding a model runs only its cells, and the report and summary compare the models."""

import json

import pytest
from grids import grid_config
from tiny import build_tiny_model

from objlab.config import load_config
from objlab.errors import StateError
from objlab.report.data import load_report_data
from objlab.report.html import write_report
from objlab.report.models import ordering_consistency
from objlab.report.summary import compact_summary
from objlab.runner.execute import run_grid
from objlab.store import ResultsStore


@pytest.fixture(scope="module")
def second_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-second"), seed=1)


def models_config(tmp_path, tiny_model, models, name="config.yaml"):
    path = grid_config(tmp_path, tiny_model, name=name, objectives={"sft": {}, "dpo": {}, "kl": {}}, budgets=[600])
    data = load_config(path).model_dump(mode="json", exclude_none=True)
    data.pop("model")
    data["models"] = models
    path.write_text(json.dumps(data))
    return path


def test_two_models_one_store_resume_after_adding_one_and_the_cross_model_report(tiny_model, second_model, tmp_path):
    first = {"name_or_path": str(tiny_model), "key": "first"}
    run_dir = tmp_path / "run"
    one = run_grid(load_config(models_config(tmp_path, tiny_model, [first])), run_dir)
    assert sorted(one.cells_run) == ["first/base", "first/dpo/seed-0/budget-600", "first/kl/seed-0/budget-600", "first/sft/seed-0/budget-600"]

    second = {"name_or_path": str(second_model), "key": "second", "batch_size": 4}
    both = load_config(models_config(tmp_path, tiny_model, [first, second], name="both.yaml"))
    assert [single.train.batch_size for _, single in both.per_model()] == [2, 4]
    two = run_grid(both, run_dir)  # adding a model runs only its cells
    assert sorted(two.cells_run) == ["second/base", "second/dpo/seed-0/budget-600", "second/kl/seed-0/budget-600", "second/sft/seed-0/budget-600"]
    assert (run_dir / "adapters" / "second" / "sft" / "seed-0" / "budget-600" / "adapter_model.safetensors").is_file()

    changed = dict(first, dtype="float32")
    with pytest.raises(StateError, match=r"models.first.dtype: 'auto' -> 'float32'"):
        run_grid(load_config(models_config(tmp_path, tiny_model, [changed, second], name="changed.yaml")), run_dir)

    with ResultsStore.in_run_dir(run_dir, read_only=True) as store:
        cells = store.frame("SELECT cell_id, model, kind FROM cells ORDER BY cell_id")
        tests = store.frame("SELECT cell_id, comparison FROM metrics WHERE metric = 'asr_vs_base' AND \"group\" = ''")
        data = load_report_data(store)
        summary = compact_summary(data, store)
    assert dict(zip(cells["cell_id"], cells["model"]))["second/base"] == "second" and set(cells["model"]) == {"first", "second"}
    assert len(tests) == 6 and all("cell - base" in text for text in tests["comparison"])  # each cell against its own model's base
    assert "== model first" in summary and "== model second" in summary and "Kendall's tau" in summary
    table = ordering_consistency(data)
    assert list(table["models"]) == ["first ~ second"] and list(table["objectives"]) == [3]
    page = write_report(run_dir).read_text()
    assert "Objectives across models" in page and 'id="model-first"' in page and 'id="model-second"' in page
    assert (run_dir / "report" / "models.png").is_file() and (run_dir / "report" / "second" / "frontier.png").is_file()
