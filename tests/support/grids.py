"""The small grid most runner tests share: two objectives, two budgets, every axis, on the tiny model."""

from tiny import GSM8K, PERSONA, write_config

TRAIN = {"batch_size": 2, "warmup_steps": 1, "checkpoint_every": 1, "max_length": 256}
FORBIDDEN = "category,source,forbidden_prompt\n" + "".join(f"placeholder,test,Placeholder forbidden request {i}.\n" for i in range(3))


def grid_config(tmp_path, tiny_model, name="config.yaml", **overrides):
    forbidden = tmp_path / "forbidden.csv"
    forbidden.write_text(FORBIDDEN)
    sections = {
        "objectives": {"sft": {}, "dpo": {}},
        "budgets": [600, 1200],
        "train": TRAIN,
        "eval": {
            "generation": {"max_new_tokens": 6, "backend": "hf"},
            "capability": [{"kind": "gsm8k", "source": str(GSM8K), "limit": 3}],
            "jailbreak": {"prompts": str(forbidden), "attacks": ["none", "dan"]},
            "persona": {"dir": str(PERSONA), "limit": 4},
        },
    }
    sections.update(overrides)
    return write_config(tmp_path / name, tiny_model, **sections)
