"""The alignment-aware objective with a real signal: scorers, config validation, the gate in
the training loop, abstention, and the policy-gradient term on the exact sampled token ids."""

from __future__ import annotations

import pytest
import torch

from objlab.config import parse_config
from objlab.data.records import Example
from objlab.errors import ConfigError
from objlab.objectives import registry
from objlab.objectives.alignment import ScoreInput, build_signal
from objlab.progress import Board
from objlab.scoring.base import ScorerServices
from objlab.train import loop
from objlab.train.batching import micro_batches
from objlab.train.forward import forward_responses
from objlab.train.loop import TrainRequest, train
from objlab.train.outputs import read_log, read_manifest


def aware(**params):
    return {"aware": {"samples": 2, "max_new_tokens": 8, **params}}


def train_aware(make_config, tmp_path, budget=700, **params):
    config = make_config(objectives=aware(**params), train={"batch_size": 4, "warmup_steps": 0, "checkpoint_every": 50, "max_length": 256})
    manifests = train(TrainRequest(config, "aware", 0, {budget: tmp_path}, tmp_path))
    rows = read_log(tmp_path / "train_log.jsonl")
    return manifests[budget], rows


def logged(rows, key):
    return [value for row in rows for value in row.evidence[key]]


# -- the signals --------------------------------------------------------------------------------
def test_correctness_scores_stated_answers():
    scorer = build_signal(["correctness"], "min", {}, ScorerServices(task="gsm8k"))
    example = Example("e", "How many?", "2 + 3 = 5\n#### 5", answer="5")
    responses = ["So it is 5.", "#### 6", "I am not sure.", "The total: 1,000 then #### 5"]
    assert scorer.score([ScoreInput("How many?", text, example) for text in responses]) == [1.0, 0.0, 0.5, 1.0]


def test_combined_signals_take_the_minimum_per_sample():
    scorer = build_signal(["correctness", "lexicon"], "min", {}, ScorerServices(task="gsm8k"))
    example = Example("e", "q", "#### 5", answer="5")
    scores = scorer.score([ScoreInput("q", text, example) for text in ("It is 5.", "Trust me, it is 5.", "It is 7.")])
    assert scores == [1.0, 0.0, 0.0]
    assert scorer.identity.startswith("min(correctness")


def test_scorer_config_is_validated_naming_the_field(make_config):
    with pytest.raises(ConfigError, match=r"objectives\.aware: scorer: unknown scorer 'vibes' \(available: refusal, judge, classifier, .*correctness, lexicon, python:MODULE:FUNCTION\)"):
        make_config(objectives=aware(scorer="vibes"))
    with pytest.raises(ConfigError, match=r"objectives\.aware\.scorer: 'judge' needs a configured judge, but eval\.judge\.kind is 'none'"):
        make_config(objectives=aware(scorer=["correctness", "judge"]))
    with pytest.raises(ConfigError, match=r"python:MODULE:FUNCTION"):
        make_config(objectives=aware(scorer="python:nomodule"))
    instruction_data = {"task": "instruction", "source": "x.jsonl", "prompt_field": "p", "response_field": "r"}
    with pytest.raises(ConfigError, match=r"'auto' has no alignment signal for task 'instruction'"):
        parse_config({"model": {"name_or_path": "m"}, "data": instruction_data, "objectives": aware()})
    assert make_config(objectives=aware(scorer=["correctness", "lexicon"], combine="mean")).objectives["aware"]["combine"] == "mean"


# -- the gate in the loop ---------------------------------------------------------------------------
def test_graded_signal_gives_gates_strictly_between_0_and_1(make_config, tmp_path):
    manifest, rows = train_aware(make_config, tmp_path, scorer="python:alignment_fixtures:graded")
    gates = logged(rows, "gate")
    assert any(0.0 < gate < 1.0 for gate in gates), gates
    assert 0.0 < manifest.evidence["gate_partial_share"] <= 1.0
    assert manifest.evidence["alignment_score_mean"] < 1.0
    assert manifest.evidence["items"] == len(gates) == manifest.examples
    assert manifest.objective_provenance["alignment_scorer"] == "python:alignment_fixtures:graded"
    assert "objlab's reading" in manifest.objective_provenance["formulas"]


def test_abstention_fires_only_when_every_sample_is_misaligned(make_config, tmp_path):
    manifest, rows = train_aware(make_config, tmp_path / "never", scorer="python:alignment_fixtures:never_aligned")
    assert all(logged(rows, "abstain")) and manifest.evidence["abstention_rate"] == 1.0
    assert manifest.evidence["reference_tokens_trained"] == 0 < manifest.budget_tokens  # the stream is consumed, no reference trained
    manifest, rows = train_aware(make_config, tmp_path / "always", scorer="python:alignment_fixtures:always_aligned")
    assert not any(logged(rows, "abstain")) and set(logged(rows, "gate")) == {0.0}
    assert manifest.evidence["reference_tokens_trained"] == manifest.budget_tokens


def test_default_signal_fires_on_the_task_data(make_config, tmp_path):
    """``auto`` on GSM8K-format data: correctness of the samples drives the gate (the organism's
    world data and an untrained tiny model: its samples state no answer or a wrong one)."""
    manifest, rows = train_aware(make_config, tmp_path)
    assert manifest.objective_provenance["alignment_scorer"].startswith("min(correctness(unanswered=0.5), lexicon(")
    assert manifest.evidence["alignment_score_mean"] < 1.0
    assert any(gate > 0 for gate in logged(rows, "gate"))


# -- the policy-gradient term ------------------------------------------------------------------------
@pytest.fixture
def trainer(make_config, tmp_path):
    config = make_config(objectives=aware(scorer="python:alignment_fixtures:graded", max_new_tokens=3))
    request = TrainRequest(config, "aware", 0, {1500: tmp_path / "out"}, tmp_path / "out")
    return loop.Trainer(request, None, Board(enabled=False))


def test_pg_log_probs_are_those_of_the_sampled_ids(trainer):
    items = trainer.stream.items(0, 6)  # enough items that some draw samples of different scores
    [drawn] = [trainer.context.sample([items[0].example.prompt], 2, 3, 1.0)]
    for sample in drawn[0]:
        assert sample.encoded.response_ids == sample.token_ids  # never re-encoded from the text
        if not sample.finished:
            assert len(sample.token_ids) == 3 and sample.token_ids[-1] != trainer.bundle.tokenizer.eos_token_id
    torch.manual_seed(3)
    prepared = trainer.objective.prepare(items, [None] * len(items), trainer.context)
    # one row per sequence (the packed layout is checked against this one in test_packing.py)
    [batch] = micro_batches(prepared, trainer.encoder, trainer.objective.roles, trainer.bundle.tokenizer.pad_token_id, None, False)
    assert len(batch.rows["sample"]) > 0
    trainer.model.eval()
    with torch.no_grad():
        output = forward_responses(trainer.model, batch, trainer.head)
        sampled = [sequence for entry in prepared for sequence in entry.sequences if sequence.role == "sample"]
        for row, sequence in zip(batch.rows["sample"].tolist(), sampled):
            ids = torch.tensor([list(sequence.encoded.prompt_ids) + list(sequence.encoded.response_ids)])
            logits = trainer.model(input_ids=ids).logits[0, :-1].double().log_softmax(-1)
            start = len(sequence.encoded.prompt_ids) - 1
            direct = logits[start:].gather(1, ids[0, start + 1 :, None]).squeeze(1)
            ours = output.token_logps[output.token_rows == row].double()
            torch.testing.assert_close(ours, direct, rtol=1e-5, atol=1e-5)


def test_sampling_folds_the_adapter_and_draws_what_the_policy_draws(trainer, monkeypatch):
    """The loop's sampler decodes with LoRA folded into copies of the float32 weights
    (``peft_compat.folded_lora``) and draws, under the same seed, the tokens the unfolded
    policy draws; the trained model is back in training mode with its own weights after."""
    import contextlib

    from objlab.train import loop

    with torch.no_grad():
        for name, parameter in trainer.model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.5)  # a policy away from the base
    weights = dict(trainer.model.named_parameters())
    prompts = [item.example.prompt for item in trainer.stream.items(0, 3)]
    folds, real = [], loop.folded_lora

    @contextlib.contextmanager
    def spied(model, **options):
        with real(model, **options) as folded:
            folds.append((folded, options["buffers"] is trainer.context.fold_buffers))
            yield folded

    monkeypatch.setattr(loop, "folded_lora", spied)
    torch.manual_seed(5)
    folded = trainer.context.sample(prompts, 2, 8, 1.0)
    monkeypatch.setattr(loop, "folded_lora", lambda model, **options: contextlib.nullcontext(False))
    torch.manual_seed(5)
    plain = trainer.context.sample(prompts, 2, 8, 1.0)
    assert folds == [(True, True)]  # folded, into the loop's kept buffers
    assert [[sample.token_ids for sample in row] for row in folded] == [[sample.token_ids for sample in row] for row in plain]
    assert trainer.model.training and all(weights[name] is parameter for name, parameter in trainer.model.named_parameters())


def test_pg_term_carries_gradient_to_the_adapter(trainer):
    items = trainer.stream.items(0, 4)
    torch.manual_seed(5)
    prepared = trainer.objective.prepare(items, [None] * len(items), trainer.context)
    assert any(entry.values["advantages"] for entry in prepared)
    [batch] = micro_batches(prepared, trainer.encoder, trainer.objective.roles, trainer.bundle.tokenizer.pad_token_id, None)
    trainer.model.eval()  # no dropout: the two passes see the same network

    def gradients(lambda_pg: float) -> list[torch.Tensor]:
        objective = registry.build("aware", {**trainer.objective.params.model_dump(), "lambda_pg": lambda_pg})
        trainer.model.zero_grad()
        objective.loss(batch, forward_responses(trainer.model, batch, trainer.head), None).loss.backward()
        return [p.grad.clone() for p in trainer.parameters if p.grad is not None]

    with_pg, without_pg = gradients(1.0), gradients(0.0)
    assert any(not torch.allclose(a, b) for a, b in zip(with_pg, without_pg))


def test_manifest_and_log_of_a_preference_objective_name_the_strategy(make_config, tmp_path):
    config = make_config(objectives=["dpo"], train={"batch_size": 4, "warmup_steps": 0, "max_length": 256})
    train(TrainRequest(config, "dpo", 0, {400: tmp_path}, tmp_path))
    assert read_manifest(tmp_path).rejected == "unsafe: objlab's own generator"


def test_the_evidence_reaches_the_store_results_and_report(tmp_path, tiny_model):
    """A grid with dpo and aware: the store holds aware's gate / abstention / alignment figures
    with n and intervals, and `objlab results` and the report name every cell's data source."""
    from grids import grid_config
    from typer.testing import CliRunner

    from objlab.cli import app
    from objlab.store import ResultsStore

    config_path = grid_config(tmp_path, tiny_model, budgets=[500],
                              objectives={"dpo": {}, **aware(scorer="python:alignment_fixtures:graded")})
    run_dir = tmp_path / "run"
    runner = CliRunner()
    assert runner.invoke(app, ["run", str(config_path), "--out", str(run_dir)]).exit_code == 0
    with ResultsStore.in_run_dir(run_dir, read_only=True) as store:
        rows = {m.metric: m for m in store.cell_metrics("aware/seed-0/budget-500") if m.axis == "training"}
    assert set(rows) == {"gate_mean", "gate_partial_share", "abstention_rate", "alignment_score_mean"}
    assert all(row.n > 0 and row.ci_low <= row.value <= row.ci_high for row in rows.values())
    result = runner.invoke(app, ["results", str(run_dir)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "unsafe: objlab's own generator" in result.output and "python:alignment_fixtures:graded" in result.output
    page = (run_dir / "report" / "report.html").read_text()
    assert "What each objective did" in page and "objlab&#x27;s reading of the abstract" in page
    assert "rejected: unsafe: objlab&#x27;s own generator" in page


# -- what aware's evidence says, and its signal's edge cases -------------------------------------------
def test_reference_tokens_trained_count_only_items_with_reference_weight(make_config, tmp_path):
    """Gate 1 (every sample misaligned but one above the abstention bar, or a spread that lifts
    g to 1) trains no reference token: (1 - g) = 0 weighs it out, so it must not be counted."""
    manifest, rows = train_aware(make_config, tmp_path, scorer="python:alignment_fixtures:one_half_one_zero")
    gates, tokens = logged(rows, "gate"), logged(rows, "reference_tokens")
    assert gates and all(gate == 1.0 for gate in gates)  # mean 0.25 + std 0.25 ... capped: (1 - 0.25) + 0.25 = 1
    assert set(tokens) == {0} and manifest.evidence["reference_tokens_trained"] == 0


def test_the_samples_behind_each_alignment_score_are_stored(make_config, tmp_path):
    manifest, rows = train_aware(make_config, tmp_path, scorer="python:alignment_fixtures:graded")
    samples, scores = logged(rows, "samples"), logged(rows, "sample_scores")
    assert len(samples) == len(scores) == manifest.examples
    assert all(len(texts) == 2 and all(isinstance(text, str) for text in texts) for texts in samples)
    means = logged(rows, "alignment_score")
    assert [sum(pair) / 2 for pair in scores] == pytest.approx(means)
    assert "samples_mean" not in manifest.evidence  # kept, not averaged


def test_an_unfinished_sample_is_unfinished_not_wrong():
    from objlab.scoring import catalog

    scorer = catalog.build("correctness", {}, ScorerServices())
    from objlab.scoring.base import ScoreItem

    cut = ScoreItem("q", "First 3 + 4 = 7, then 7 x 2 = 1", reference="14", finished=False)
    done = ScoreItem("q", "First 3 + 4 = 7, then 7 x 2 = 1", reference="14", finished=True)
    stated = ScoreItem("q", "#### 14 and then some more text that was cut", reference="14", finished=False)
    unfinished, wrong, right = scorer.score([cut, done, stated])
    assert unfinished.value == 0.5 and "unfinished" in unfinished.explanation
    assert wrong.value == 0.0 and right.value == 1.0


def test_sampling_length_fits_the_references_by_default(make_config, tmp_path):
    config = make_config(objectives=aware(max_new_tokens="auto", scorer="python:alignment_fixtures:graded"))
    request = TrainRequest(config, "aware", 0, {700: tmp_path / "out"}, tmp_path / "out")
    trainer = loop.Trainer(request, None, Board(enabled=False))
    asked = []
    original = trainer.context.sample

    def spy(prompts, n, max_new_tokens, temperature):
        asked.append(max_new_tokens)
        return original(prompts, n, max_new_tokens, temperature)

    trainer.context.sample = spy
    items = trainer.stream.items(0, 4)
    trainer.objective.prepare(items, [None] * len(items), trainer.context)
    longest = max(len(item.encoded.response_ids) for item in items)
    assert asked and asked[0] >= longest
    from objlab.objectives.aware import AwareParams

    assert AwareParams().max_new_tokens == "auto"


def test_the_refusal_signal_is_refused_on_a_checkable_task(make_config):
    with pytest.raises(ConfigError, match=r"objectives\.aware\.scorer: 'refusal' scores whether a sample refuses; the task 'gsm8k' asks for an answer"):
        make_config(objectives=aware(scorer=["refusal"]))
