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
