"""The toxicity axis: ToxiGen's prompt files (written here in its published format: one prompt a
line, line breaks escaped as make_prompts.py writes them), a folder of them and a table load
with their groups and labels; a stratified limit covers every group; rates and intervals from
scripted verdicts; the paired tests against the base model and between objectives; the config
checks its scorer."""

import json
import math

import pytest

from objlab.config.evaluation import ToxicitySettings
from objlab.errors import ConfigError, DataError
from objlab.evaluate.axes.toxicity import AXIS, target_rows
from objlab.evaluate.axes.toxigen_prompts import load_toxicity_prompts, unescape
from objlab.evaluate.results.between import between_cells
from objlab.evaluate.results.compare import compare_with_base
from objlab.evaluate.results.eval_result import EvalResult
from objlab.evaluate.results.stats import bootstrap_mean, wilson
from objlab.records.items import ItemRecord
from objlab.scoring.base import Scorer


def toxigen_line(statements: list[str]) -> str:
    """One prompt as ToxiGen's make_prompts.py writes it: "- s\\n" per statement, a closing "-",
    written as the string's repr without its quotes (so its line breaks are the characters \\n)."""
    prompt = "".join(f"- {statement}\n" for statement in statements) + "-"
    return prompt.__repr__()[1:-1]


def write_toxigen(folder, files: dict[str, int]):
    """ToxiGen's prompts/ folder: per file name, that many prompts (one a line)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, count in files.items():
        group = name.split("_", 1)[1].removesuffix("_1k.txt")
        lines = [toxigen_line([f"statement {i} about {group}", f"another statement {i}"]) for i in range(count)]
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def test_a_toxigen_prompt_file_is_one_prompt_a_line_with_its_line_breaks_restored(tmp_path):
    folder = write_toxigen(tmp_path / "prompts", {"hate_asian_1k.txt": 3, "neutral_asian_1k.txt": 2, "hate_native_american_1k.txt": 2})
    (folder / "README.md").write_text("not a prompt file")
    write_toxigen(folder / "new", {"hate_bisexual.txt": 4})  # a subfolder is not read
    raw = (folder / "hate_asian_1k.txt").read_text().splitlines()[0]
    assert "\\n" in raw and "\n" not in raw  # the published format: escaped line breaks on one line
    prompts = load_toxicity_prompts(ToxicitySettings(prompts=str(folder)))
    assert len(prompts) == 7 and prompts.info.limit is None
    first = prompts[0]
    assert first.prompt == "- statement 0 about asian\n- another statement 0\n-" and first.item_id == "hate_asian_1k.txt:1"
    assert (first.group, first.label) == ("asian", "hate")
    assert {(p.group, p.label) for p in prompts} == {("asian", "hate"), ("asian", "neutral"), ("native_american", "hate")}
    one = load_toxicity_prompts(ToxicitySettings(prompts=str(folder / "neutral_asian_1k.txt")))
    assert [p.item_id for p in one] == ["neutral_asian_1k.txt:1", "neutral_asian_1k.txt:2"] and {p.label for p in one} == {"neutral"}
    assert unescape("- a \\\\ b\\n-") == "- a \\ b\n-"  # as open-instruct reads the files


def test_blank_lines_bad_names_and_empty_folders_are_refused_or_skipped(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "hate_women_1k.txt").write_text(toxigen_line(["x"]) + "\n\n" + toxigen_line(["y"]) + "\n")
    prompts = load_toxicity_prompts(ToxicitySettings(prompts=str(folder)))
    assert [p.item_id for p in prompts] == ["hate_women_1k.txt:1", "hate_women_1k.txt:3"]
    (folder / "women.txt").write_text("- x\\n-\n")
    with pytest.raises(DataError, match=r"women.txt: not a ToxiGen prompt file name: expected <label>_<group>\[_1k\].txt"):
        load_toxicity_prompts(ToxicitySettings(prompts=str(folder)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no ToxiGen prompt files"):
        load_toxicity_prompts(ToxicitySettings(prompts=str(tmp_path / "empty")))
    for missing in ("missing.txt", "missing_folder"):
        with pytest.raises(DataError, match=rf"{missing}: not found \(eval.toxicity.prompts: ToxiGen's prompts/ directory"):
            load_toxicity_prompts(ToxicitySettings(prompts=str(tmp_path / missing)))


def test_a_csv_or_jsonl_with_prompt_group_and_label(tmp_path):
    csv = tmp_path / "toxigen.csv"
    csv.write_text("prompt,group,label\n" + "".join(f"\"{toxigen_line([f's{i}'])}\",{g},hate\n" for i, g in enumerate(["jewish", "women", "jewish"])))
    prompts = load_toxicity_prompts(ToxicitySettings(prompts=str(csv)))
    assert [(p.item_id, p.prompt, p.group, p.label) for p in prompts][:1] == [("toxigen.csv:2", "- s0\n-", "jewish", "hate")]
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t, "target": g}) for t, g in [("- a\n-", "muslim"), ("- b\n-", "trans")]))
    mine = load_toxicity_prompts(ToxicitySettings(prompts=str(jsonl), prompt_field="text", group_field="target", label_field=None))
    assert [(p.prompt, p.group, p.label) for p in mine] == [("- a\n-", "muslim", ""), ("- b\n-", "trans", "")]
    with pytest.raises(DataError, match=r"mine.jsonl:1.*missing field 'group'"):
        load_toxicity_prompts(ToxicitySettings(prompts=str(jsonl), prompt_field="text", label_field=None))


def test_a_stratified_limit_covers_every_group_and_is_reproducible(tmp_path):
    sizes = {"hate_asian_1k.txt": 40, "hate_black_1k.txt": 30, "hate_jewish_1k.txt": 5, "hate_women_1k.txt": 3, "hate_trans_1k.txt": 2}
    folder = write_toxigen(tmp_path / "prompts", sizes)
    limited = load_toxicity_prompts(ToxicitySettings(prompts=str(folder), limit=10), seed=4)
    assert len(limited) == 10 and {p.group for p in limited} == {"asian", "black", "jewish", "women", "trans"}
    assert limited.info.stratified_by == "group" and sum(limited.info.strata.values()) == 10
    assert limited.info.item_ids == [p.item_id for p in limited] and all(i.startswith("hate_") for i in limited.info.item_ids)
    again = load_toxicity_prompts(ToxicitySettings(prompts=str(folder), limit=10), seed=4)
    assert [p.item_id for p in again] == [p.item_id for p in limited]
    other = load_toxicity_prompts(ToxicitySettings(prompts=str(folder), limit=10), seed=5)
    assert [p.item_id for p in other] != [p.item_id for p in limited]
    write_toxigen(folder, {"neutral_asian_1k.txt": 20})
    both = load_toxicity_prompts(ToxicitySettings(prompts=str(folder), limit=12), seed=0)
    assert both.info.stratified_by == "group and label" and {(p.group, p.label) for p in both} >= {("asian", "neutral"), ("trans", "hate")}


class Scripted(Scorer):
    name, description, origin = "scripted", "test", "objlab"

    def __init__(self):
        self.identity = "scripted#1"

    def score(self, items):  # pragma: no cover - not called
        raise NotImplementedError


def item(item_id, group, toxic, p_toxic=None, label="hate"):
    extra = {"label": label, "toxic": toxic, "p_toxic": p_toxic}
    score = math.nan if toxic is None else (p_toxic if p_toxic is not None else float(toxic))
    return ItemRecord(AXIS, group, item_id, "p", "r", score, "{}", "scripted#1", extra)


SCRIPT = [
    item("a:1", "asian", True, 0.9), item("a:2", "asian", False, 0.2), item("a:3", "asian", False, 0.1),
    item("w:1", "women", True, 0.7), item("w:2", "women", None), item("n:1", "asian", False, 0.3, label="neutral"),
]


def test_rates_and_intervals_from_scripted_verdicts():
    rows = {(row.metric, row.group): row for row in target_rows(SCRIPT, Scripted())}
    overall = rows[("toxic_rate", "")]
    expected = wilson(2, 5)  # 2 of the 5 decided generations toxic (one error item left out)
    assert (overall.value, overall.n, overall.ci_low, overall.ci_high) == (0.4, 5, expected.ci_low, expected.ci_high)
    assert "1 of 6 items without a verdict" in overall.note and "scorer: scripted#1" in overall.note
    assert rows[("toxic_rate", "asian")].value == pytest.approx(1 / 4) and rows[("toxic_rate", "women")].n == 1
    assert rows[("toxic_rate", "label:hate")].n == 4 and rows[("toxic_rate", "label:neutral")].value == 0.0
    mean = rows[("toxicity_mean", "")]
    assert mean.value == pytest.approx((0.9 + 0.2 + 0.1 + 0.7 + 0.3) / 5) and mean.method == bootstrap_mean([0.9, 0.2, 0.1, 0.7, 0.3]).method
    assert mean.n == 5 and mean.ci_low < mean.value < mean.ci_high
    one_label = {(row.metric, row.group) for row in target_rows(SCRIPT[:4], Scripted())}
    assert not any(group.startswith("label:") for _, group in one_label)  # one label: no per-label rows
    no_values = {row.metric for row in target_rows([item("x:1", "asian", True)], Scripted())}
    assert no_values == {"toxic_rate"}  # a scorer without a value: no mean


def test_paired_tests_against_the_base_model_and_between_objectives():
    base = [item(f"x:{i}", "asian" if i % 2 else "women", False, 0.1) for i in range(14)]
    toxic = [item(f"x:{i}", "asian" if i % 2 else "women", i < 12, 0.8) for i in range(14)]
    rows = {(row.metric, row.group): row for row in compare_with_base(EvalResult([], toxic, None), EvalResult([], base, None))}
    overall = rows[("toxic_rate_vs_base", "")]
    assert overall.axis == AXIS and overall.value == pytest.approx(12 / 14) and overall.n == 14 and overall.p_value < 0.01
    assert "McNemar" in overall.method and "Holm-adjusted over 3 toxicity figures" in overall.comparison
    assert rows[("toxic_rate_vs_base", "asian")].n == 7 and ("toxic_rate_vs_base", "women") in rows
    between = {row.metric: row for row in between_cells({"dpo": toxic, "sft": base}, [])}
    assert between["toxic_rate_diff"].group == "dpo - sft" and between["toxic_rate_diff"].value == pytest.approx(12 / 14)


def test_the_scorer_must_say_whether_a_text_is_toxic(make_config, tmp_path):
    folder = write_toxigen(tmp_path / "prompts", {"hate_asian_1k.txt": 2})
    config = make_config(eval={"toxicity": {"prompts": str(folder)}})
    assert config.eval.toxicity.scorer == "toxigen_roberta" and config.eval.toxicity.instruction == "Complete the following: "
    with pytest.raises(ConfigError, match=r"eval.toxicity.scorer: 'lexicon' does not say whether a text is toxic"):
        make_config(eval={"toxicity": {"prompts": str(folder), "scorer": "lexicon"}})
    with pytest.raises(ConfigError, match=r"eval.toxicity.scorer: 'objlab_rubric' needs a judge"):
        make_config(eval={"toxicity": {"prompts": str(folder), "scorer": "objlab_rubric"}})
    with pytest.raises(ConfigError, match=r"eval.toxicity.scorer: unknown scorer 'no_such'"):
        make_config(eval={"toxicity": {"prompts": str(folder), "scorer": "no_such"}})


def test_run_plan_counts_the_axis_generations(make_config, tmp_path):
    from objlab.runner.plan import plan_evaluation
    from objlab.runner.plan_inputs import PlanInputs

    folder = write_toxigen(tmp_path / "prompts", {"hate_asian_1k.txt": 5, "hate_women_1k.txt": 4})
    plain = plan_evaluation(make_config(), checkpoints=1)
    counted = plan_evaluation(make_config(eval={"toxicity": {"prompts": str(folder), "limit": 6, "max_new_tokens": 10}}), checkpoints=1)
    assert counted.generations_per_checkpoint == plain.generations_per_checkpoint + 6
    assert counted.generated_tokens_per_checkpoint == plain.generated_tokens_per_checkpoint + 60
    missing = make_config(eval={"toxicity": {"prompts": str(tmp_path / "elsewhere"), "limit": 50}})
    inputs = PlanInputs(strict=False)
    assert plan_evaluation(missing, checkpoints=1, inputs=inputs).generations_per_checkpoint == plain.generations_per_checkpoint + 50
    assert any(note.startswith("toxicity prompts") and "its limit" in note for note in inputs.notes)
