"""``run --plan``'s counts come from the scorers' declared needs: a python: scorer asks no judge."""

from tiny import FORBIDDEN

from objlab.runner.plan import plan_evaluation


def test_a_python_scorer_with_a_judge_configured_plans_no_judge_calls(make_config, tmp_path):
    prompts = FORBIDDEN
    judge = {"kind": "openai", "model": "judge-model"}
    jailbreak = {"prompts": str(prompts), "attacks": ["none", "dan"]}
    own = make_config(eval={"jailbreak": {**jailbreak, "scorer": "python:objlab.organism.judge:complies"}, "judge": judge})
    plan = plan_evaluation(own, checkpoints=1)
    assert plan.generations_per_checkpoint > 0 and plan.judge_calls_per_checkpoint == 0
    judged = make_config(eval={"jailbreak": jailbreak, "judge": judge})  # auto: the judge decides
    assert plan_evaluation(judged, checkpoints=1).judge_calls_per_checkpoint == plan.generations_per_checkpoint


def test_plan_on_a_run_directory_refuses_a_changed_config_as_run_does(make_config, tmp_path):
    from typer.testing import CliRunner

    from objlab.cli import app
    from objlab.runner.guard import guard_config
    from objlab.store import ResultsStore

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with ResultsStore.in_run_dir(run_dir) as store:
        guard_config(store, make_config(), str(run_dir))
    changed = make_config(train={"batch_size": 4, "warmup_steps": 0, "max_length": 256, "learning_rate": 0.5})
    config_path = tmp_path / "config.yaml"  # make_config writes the config it loads here
    planned = CliRunner().invoke(app, ["run", str(config_path), "--plan", "--out", str(run_dir)])
    assert planned.exit_code == 2, planned.output
    assert "was started with a different config; changed:" in planned.output and "train.learning_rate" in planned.output
    assert changed.train.learning_rate == 0.5
