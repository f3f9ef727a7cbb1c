"""eval.lm_eval presets: `normative` expands to the lm-eval 0.4.x task names of the reference
studies' normative companions (checked against lm-eval's own installed task index and YAML, no
hub), a preset and the user's own tasks combine into one request (local task YAML, no hub),
and the expansion is recorded in the stored config."""

from pathlib import Path

import pytest
import yaml
from tiny import ANSWER_TASK, CHOICE_TASK, DOCUMENTS, write_lm_eval_tasks

from objlab.config import parse_config
from objlab.config import lm_eval_presets
from objlab.config.evaluation import LmEvalSettings
from objlab.errors import ConfigError
from objlab.evaluate.axes import harness

lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is objlab's optional extra objlab[lm-eval] (the test extra installs it)")

NORMATIVE = ["truthfulqa_gen", "truthfulqa_mc1", "truthfulqa_mc2", "winogender_all", "eq_bench"]
MINIMAL = {"model": {"name_or_path": "some/model"}, "data": {"source": "train.jsonl"}}


def task_yaml(path: Path) -> dict:
    """An lm-eval task YAML as a dict (``!function`` tags read as None, ``include`` merged)."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    config = yaml.load(path.read_text(), Loader)  # noqa: S506 - a SafeLoader subclass
    if "include" in config:
        config = {**task_yaml(path.parent / config["include"]), **config}
    return config


@pytest.fixture(scope="module")
def lm_eval_index():
    """lm-eval's own index of its installed task YAML (read from the package, offline)."""
    from lm_eval.tasks import TaskManager

    with harness.quiet_lm_eval():
        return TaskManager()


def test_normative_expands_to_lm_evals_task_names(lm_eval_index):
    settings = LmEvalSettings(preset="normative")
    assert settings.tasks == NORMATIVE
    assert all(lm_eval_index.match_tasks([name]) == [name] for name in settings.tasks)
    assert lm_eval_index.match_tasks(["toxigen"]) == ["toxigen"]  # lm-eval has it, the preset leaves it out
    assert "toxigen" not in settings.tasks
    assert any("toxigen" in note.lower() for note in lm_eval_presets.NORMATIVE.not_included)


def test_the_presets_sizes_match_lm_evals_task_configs(lm_eval_index):
    """Each preset task's kind and generation cap as lm-eval's installed YAML defines them (what
    the offline plan prices when the datasets cannot be read)."""
    for task in lm_eval_presets.NORMATIVE.tasks:
        config = task_yaml(Path(lm_eval_index.task_index[task.name].yaml_path))
        generates = config["output_type"] == "generate_until"
        assert generates == (task.max_gen_toks is not None), task.name
        if generates:
            cap = config.get("generation_kwargs", {}).get("max_gen_toks", harness.DEFAULT_MAX_GEN_TOKS)
            assert cap == task.max_gen_toks, task.name
        if task.choices is not None:
            assert config["output_type"] == "multiple_choice"


def test_preset_then_user_tasks_once_each_and_stable_when_stored():
    config = parse_config({**MINIMAL, "eval": {"lm_eval": {"preset": "normative", "tasks": ["arc_easy", "truthfulqa_mc2"]}}})
    assert config.eval.lm_eval.tasks == NORMATIVE + ["arc_easy"]
    stored = config.model_dump(mode="json")
    assert stored["eval"]["lm_eval"]["preset"] == "normative" and stored["eval"]["lm_eval"]["tasks"] == NORMATIVE + ["arc_easy"]
    assert parse_config(stored).fingerprint() == config.fingerprint()
    with pytest.raises(ConfigError, match=r"eval\.lm_eval: preset: unknown preset 'normtive' \(known: normative\)"):
        parse_config({**MINIMAL, "eval": {"lm_eval": {"preset": "normtive"}}})
    with pytest.raises(ConfigError, match=r"eval\.lm_eval\.tasks"):
        parse_config({**MINIMAL, "eval": {"lm_eval": {"tasks": []}}})


def test_a_preset_and_local_tasks_combine_in_one_request(tmp_path, monkeypatch):
    """A preset of one local task plus the user's other local task: lm-eval loads both (no hub),
    the plan counts both, and the record names the preset."""
    tasks = write_lm_eval_tasks(tmp_path / "tasks")
    local = lm_eval_presets.Preset("local", "one local task", (lm_eval_presets.PresetTask(CHOICE_TASK, DOCUMENTS, "tests", choices=3),))
    monkeypatch.setitem(lm_eval_presets.PRESETS, "local", local)
    settings = LmEvalSettings(preset="local", tasks=[ANSWER_TASK], include_path=str(tasks))
    assert settings.tasks == [CHOICE_TASK, ANSWER_TASK]
    _, loaded = harness.task_manager(settings)
    assert set(loaded["tasks"]) == {CHOICE_TASK, ANSWER_TASK}
    requests, generated = harness.count_requests(settings)
    assert requests == {"loglikelihood": DOCUMENTS * 3, "generate_until": DOCUMENTS}
    assert generated == DOCUMENTS * yaml.safe_load((tasks / f"{ANSWER_TASK}.yaml").read_text())["generation_kwargs"]["max_gen_toks"]
