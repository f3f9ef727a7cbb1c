"""The HTML report on the synthetic fixture store (fabricated numbers, see test_report_fixtures)."""

from __future__ import annotations

import html
import json
import re
import struct

import pytest
from rich.console import Console
from report_fixtures import (
    BUDGETS,
    CONFIG,
    FIXTURE_CELLS,
    SCRIPT_NOTE,
    TRANSLATION_NOTE,
    build_fixture_run,
    eval_manifest,
    own_rows,
)

from objlab.errors import StateError
from objlab.report.data import load_report_data, pending_cells
from objlab.report.html import REPORT_DIR, render_html, write_report
from objlab.report.plots import PLOTS
from objlab.report.style import placeholder
from objlab.report.tables import measure_table, render_headline
from objlab.scoring.python_hook import PythonScorer
from objlab.scoring.refusal import CLASSIFIER_NAME, RefusalClassifier
from objlab.scoring.rubric_judges import ObjlabRubric
from objlab.scoring.rubrics import OBJLAB_JAILBREAK_RUBRIC
from objlab.scoring.string_matching import PhraseList, StringMatching
from objlab.store import ResultsStore

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory):
    return build_fixture_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def report(fixture_run):
    path = write_report(fixture_run)
    return path, path.read_text(encoding="utf-8")


def test_writes_html_and_one_png_per_plot(report, fixture_run):
    path, page = report
    assert path == fixture_run / REPORT_DIR / "report.html"
    pngs = sorted(p.name for p in path.parent.glob("*.png"))
    assert pngs == sorted(f"{plot.name}.png" for plot in PLOTS) and len(pngs) == 5
    for png in path.parent.glob("*.png"):
        width, height = png_size(png)
        assert width > 300 and height > 150
    assert page.count('src="data:image/png;base64,') == 5


def test_page_is_self_contained(report):
    _, page = report
    assert not re.search(r"<script|<link|@import|url\(", page, re.IGNORECASE)
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith(("data:image/png;base64,", "#")) for s in sources)


def test_every_objective_budget_and_pending_cell_appears(report):
    _, page = report
    for objective, seed in FIXTURE_CELLS:
        for budget in BUDGETS:
            assert f"{objective}/seed-{seed}/budget-{budget}" in page
    assert "2 cell(s) pending" in page
    for label in ("dpo seed 1 1k", "dpo seed 1 4k"):
        assert f"<td>{label}</td><td>pending</td>" in page


def test_toy_banner_only_for_toy_runs(report, fixture_run):
    _, page = report
    assert 'class="toy-banner"' in page and "TOY MODEL RUN" in page
    with ResultsStore.in_run_dir(fixture_run, read_only=True) as store:
        data = load_report_data(store)
    data.config["toy"] = False
    data.cells["eval_manifest"] = [manifest.model_copy(update={"toy": False}) for manifest in data.cells["eval_manifest"]]
    pngs = {plot.name: fixture_run / REPORT_DIR / f"{plot.name}.png" for plot in PLOTS}
    assert "TOY MODEL RUN" not in render_html(data, pngs)


def test_store_text_is_escaped(report):
    _, page = report
    assert "<script" not in page.lower()
    assert html.escape(SCRIPT_NOTE) in page


def test_skipped_translation_attack_is_explained(report):
    _, page = report
    assert html.escape(TRANSLATION_NOTE) in page
    assert "<strong>jailbreak asr (translation)</strong>: skipped in 7 of 7 cells" in page


def test_provenance_and_time_per_phase_are_stated(report):
    _, page = report
    for text in ("fixture/toy-llama", "fixture/arithmetic.jsonl", "refusal-classifier", "none (no judge configured)",
                 "hf (float32)", "<td>snapshot</td>", "<td>own-run</td>", "<td>training</td>", "<td>evaluation (adapters)</td>"):
        assert text in page, text


def test_asr_definition_and_attack_sources_are_stated(report, fixture_run):
    _, page = report
    definition = "ASR per attack = the share of forbidden prompts whose answer succeeds"
    assert page.count(definition) >= 4  # facts, headline, and the three plots that show an ASR
    for text in ("success: the answer is not a refusal by the fixture&#x27;s classifier", "scorer: refusal-classifier",
                 "macro ASR = the mean over dan, happy_to_help, roleplay, encyclopedia",
                 "none = the no-attack condition (base rate), reported on its own", "skipped, not in the macro: translation",
                 "dan (objlab: fixture/dan.yaml)", "jailbreak: 50 of 80 rows, seeded sample (seed 0), stratified by category (a 25, b 25)"):
        assert text in page, text
    console = Console(width=200, record=True)
    with ResultsStore.in_run_dir(fixture_run, read_only=True) as store:
        render_headline(store, console)
    printed = " ".join(console.export_text().split())  # rich wraps long lines
    assert definition in printed and "dan (objlab: fixture/dan.yaml)" in printed


def test_figures_that_show_an_asr_name_its_scorer_and_attack_sources(fixture_run, tmp_path, monkeypatch):
    """A PNG is read away from the report's ASR definition, so the three ASR figures carry the
    scorer and whose attack texts the macro covers in their title block; the other plots do not."""
    from objlab.report import plots

    titles = {}
    original = plots.save

    def recording(figure, path):
        titles[path.stem] = figure._suptitle.get_text() if figure._suptitle is not None else ""
        return original(figure, path)

    monkeypatch.setattr(plots, "save", recording)
    with ResultsStore.in_run_dir(fixture_run, read_only=True) as store:
        plots.draw_all(load_report_data(store), tmp_path)
    line = "scorer: refusal-classifier; attacks in the macro: 4 objlab's own"  # a store without scorer_label: its identity
    for name in ("frontier", "asr_vs_budget", "attack_heatmap"):
        assert line in " ".join(titles[name].split()), titles[name]
    assert "scorer:" not in titles["persona_vs_budget"] and "scorer:" not in titles["capability_vs_budget"]


def _judge(identity):
    from types import SimpleNamespace

    from objlab.scoring.cache import MemoryVerdictCache
    from objlab.scoring.judges import Judge

    return Judge(SimpleNamespace(identity=identity), MemoryVerdictCache())


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: RefusalClassifier(), f"{CLASSIFIER_NAME} (objlab's own refusal classifier)"),
        (lambda: StringMatching(PhraseList("string_matching.txt", ("I'm sorry",))), "StrongREJECT's string_matching phrases (the user's copy)"),
        (lambda: PythonScorer("alignment_fixtures:graded", "verdict", {}), "the user's scorer python:alignment_fixtures:graded"),
        (lambda: PythonScorer("objlab.organism.judge:complies", "verdict", {}), "objlab's own scorer python:objlab.organism.judge:complies"),
        (lambda: ObjlabRubric(_judge("hf:judge-model"), OBJLAB_JAILBREAK_RUBRIC),
         "judge hf:judge-model, objlab's own rubric (StrongREJECT's three questions in objlab's words)"),
    ],
)
def test_the_definition_says_whose_scorer_decides_success(build, expected):
    """The short label the report's ASR figures carry: which scorer, and whether it is objlab's
    own instrument or a published one read from the user's files."""
    from objlab.evaluate.axes.jailbreak_rows import Scoring, definition

    defined = definition(Scoring(build()), [], set())
    assert defined.scorer_label == expected
    assert defined.scorers[0].label == expected


def test_asr_instruments_count_attack_origins_in_the_macro_only():
    from types import SimpleNamespace

    from objlab.records.evaluation import AttackSource, JailbreakDefinition
    from objlab.report.provenance import asr_instruments

    attacks = [AttackSource(name=name, origin=origin, source=f"{name}.yaml", description=name)
               for name, origin in [("none", "objlab"), ("aim", "strongreject"), ("wiki", "strongreject"), ("mine", "user"),
                                    ("dan", "objlab"), ("skipped", "objlab")]]
    definition = JailbreakDefinition(scorer="refusal-rules-v2", success="...", scorer_label="refusal-rules-v2 (objlab's own refusal classifier)",
                                     attacks=attacks, no_attack=["none"], macro_over=["aim", "wiki", "mine", "dan"], skipped=["skipped"])
    data = SimpleNamespace(cells={"eval_manifest": [SimpleNamespace(jailbreak=definition), None]})
    assert asr_instruments(data) == ("scorer: refusal-rules-v2 (objlab's own refusal classifier); attacks in the macro: "
                                     "2 StrongREJECT's (the user's copy), 1 the user's, 1 objlab's own")


def test_tables_behind_plots_carry_n_interval_method_and_test(fixture_run, report):
    _, page = report
    with ResultsStore.in_run_dir(fixture_run, read_only=True) as store:
        data = load_report_data(store)
    for plot in PLOTS:
        table = measure_table(data, plot.measures(data))
        shown = table[table["status"] == "ok"]
        assert not shown.empty, plot.name
        assert (shown["n"] > 0).all() and shown["method"].str.len().gt(0).all()
        assert ((shown["ci_low"] <= shown["value"]) & (shown["value"] <= shown["ci_high"])).all()
        tested = shown[shown["cell"] != "base"]
        if plot.name != "frontier" and plot.name != "asr_vs_budget":  # the fixture store holds no macro-ASR tests
            assert tested["p_value"].notna().all() and tested["test"].str.contains("Holm").all(), plot.name
    assert "p vs base (Holm)" in page and "0.004 *" in page


def test_pending_cells_come_from_the_config(fixture_run):
    with ResultsStore.in_run_dir(fixture_run, read_only=True) as store:
        assert pending_cells(load_report_data(store)) == ["dpo seed 1 1k", "dpo seed 1 4k"]


def test_placeholder_when_an_axis_is_missing(tmp_path):
    run = build_fixture_run(tmp_path / "run", axes=("capability", "jailbreak"))
    page = write_report(run).read_text(encoding="utf-8")
    reference = placeholder(tmp_path / "reference.png", "title", "message")
    assert png_size(run / REPORT_DIR / "persona_vs_budget.png") == png_size(reference)
    assert png_size(run / REPORT_DIR / "asr_vs_budget.png") != png_size(reference)
    assert "Not drawn: no persona P(match) in the results store (persona axis not evaluated)." in page
    assert page.count('src="data:image/png;base64,') == 5


def test_report_of_a_grid_where_only_the_base_model_finished(tmp_path):
    with ResultsStore.in_run_dir(tmp_path) as store:
        store.set_meta("config", json.dumps(CONFIG))
        store.record_cell("base", kind="base", metrics=own_rows(), items=[], eval_info=eval_manifest(9.0), eval_seconds=9.0)
    page = write_report(tmp_path).read_text(encoding="utf-8")
    assert len(list((tmp_path / REPORT_DIR).glob("*.png"))) == 5
    planned = len(CONFIG["objectives"]) * len(CONFIG["seeds"]) * len(BUDGETS)
    assert f"{planned} cell(s) pending" in page
    assert page.count("Not drawn: no fine-tuned cell has finished yet") == 4  # the heatmap still shows the base row


def test_unknown_primary_capability_names_the_present_ones(fixture_run):
    with pytest.raises(ValueError, match="accuracy_strict:gsm8k"):
        write_report(fixture_run, primary_capability="no_such_metric")


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(StateError, match="no results store"):
        write_report(tmp_path)


@pytest.mark.parametrize("width", [80, 160])
def test_terminal_headline_fits_the_terminal_and_keeps_every_figure(fixture_run, width):
    import io

    from rich.console import Console

    from objlab.report.tables import headline, render_headline

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None)
    with ResultsStore.in_run_dir(fixture_run, read_only=True) as store:
        render_headline(store, console)
        frame = headline(store)
    text = buffer.getvalue()
    assert max(len(line) for line in text.splitlines()) <= width
    for _, row in frame.iterrows():  # every figure's value and n is printed (at 2 decimals)
        if row["capability_status"] == "ok":
            assert f"n={int(row['capability_n'])}" in text
    assert ("compute tokens" in text.replace("\n", " ") or "compute" in text) == (width >= 140)


def test_fixture_store_holds_every_cell(tmp_path):
    with ResultsStore.in_run_dir(build_fixture_run(tmp_path), read_only=True) as store:
        assert len(store.finished_cells()) == 1 + len(FIXTURE_CELLS) * len(BUDGETS)
