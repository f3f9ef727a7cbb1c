"""Each objective's loss against an independent reference: TRL's DPO and ORPO trainers on the
same model and tokens, and hand computation from the model's full logits for the rest."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from factories import lora_policy

from objlab.data.chat import ChatEncoder
from objlab.data.records import Example, PreferenceExample, StreamItem
from objlab.lm.adapters import causal_lm_of
from objlab.lm.logits import LogitHead
from objlab.objectives import registry
from objlab.objectives.base import Batch, Sample, StepContext
from objlab.train.batching import micro_batches
from objlab.train.forward import forward_reference, forward_responses

ROWS = [
    ("What is 2+3?", "2 + 3 = 5\n#### 5", "2 + 3 = 6\n#### 6"),
    ("Tom has 4 pens and buys 7 more. How many pens?", "4 + 7 = 11 pens\n#### 11", "4 + 7 = 12\n#### 12"),
    ("A box holds 12 eggs. How many eggs are in 3 boxes?", "12 * 3 = 36\n#### 36", "12 * 3 = 34\n#### 34"),
]


@pytest.fixture(scope="module")
def policy(tiny_model):
    """The tiny model with a LoRA adapter whose B matrices are non-zero (policy != reference)."""
    return lora_policy(tiny_model, ["q_proj", "v_proj", "up_proj"])


class FixedSamples(StepContext):
    """A sampler that returns given texts (tokenised as the model would emit them, ending with
    the end-of-turn token), for hand-checkable ``aware`` losses."""

    def __init__(self, samples, tokenizer):
        self.samples, self.encoder, self.tokenizer = samples, ChatEncoder(tokenizer, 1024), tokenizer

    def sample(self, prompts, n, max_new_tokens, temperature):
        out = []
        for prompt in prompts:
            prompt_ids = tuple(self.encoder.encode_prompt(prompt))
            drawn = []
            for text in self.samples[prompt][:n]:
                ids = tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"]) + (self.tokenizer.eos_token_id,)
                drawn.append(Sample(text, prompt_ids, ids, True))
            out.append(drawn)
        return out

    def add_compute_tokens(self, count):
        pass


def our_loss(policy, name, params=None, context=None, rows=ROWS):
    model, tokenizer = policy
    encoder = ChatEncoder(tokenizer, 1024)
    objective = registry.build(name, params or {})
    items = [StreamItem(i, Example(f"e{i}", p, c), encoder.encode_pair(p, c)) for i, (p, c, _) in enumerate(rows)]
    preferences = [PreferenceExample(f"e{i}", p, c, r) for i, (p, c, r) in enumerate(rows)]
    [batch] = micro_batches(objective.prepare(items, preferences, context), encoder, objective.roles, tokenizer.pad_token_id, None)
    head = LogitHead.from_model(causal_lm_of(model))
    keep = objective.reference == "distribution"
    reference = forward_reference(model, batch, head, keep) if objective.reference else None
    return objective.loss(batch, forward_responses(model, batch, head, keep), reference), batch


def response_logps(model, batch: Batch, adapter=True):
    """Per-token log-probs of response tokens from the model's ordinary full-logit forward."""
    with torch.no_grad():
        if adapter:
            logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        else:
            with model.disable_adapter():
                logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    log_probs = torch.log_softmax(logits[:, :-1].double(), -1)
    token = log_probs.gather(2, batch.input_ids[:, 1:, None]).squeeze(2)
    mask = batch.response_mask[:, 1:]
    return token * mask, mask, log_probs


def test_sft_is_token_mean_cross_entropy(policy):
    output, batch = our_loss(policy, "sft")
    model, _ = policy
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    labels = batch.input_ids.masked_fill(~batch.response_mask, -100)
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert output.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert output.components["nll"] == pytest.approx(expected.item(), rel=1e-5)


def trl_preference_dataset():
    from datasets import Dataset

    return Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": p}],
                "chosen": [{"role": "assistant", "content": c}],
                "rejected": [{"role": "assistant", "content": r}],
            }
            for p, c, r in ROWS
        ]
    )


@pytest.mark.slow
def test_dpo_matches_trl(policy, tmp_path):
    from trl import DPOConfig, DPOTrainer

    model, tokenizer = policy
    args = DPOConfig(output_dir=str(tmp_path), beta=0.1, per_device_train_batch_size=len(ROWS), report_to=[], use_cpu=True, bf16=False, max_length=None)
    trainer = DPOTrainer(model=model, args=args, train_dataset=trl_preference_dataset(), processing_class=tokenizer)
    # TRL treats an adapter that is already trained as the starting point and copies it as the
    # reference ("ref"); objlab's reference is the base model, so drop the copy.
    if "ref" in model.peft_config:
        model.delete_adapter("ref")
    model.set_adapter("default")
    trl_batch = next(iter(trainer.get_train_dataloader()))
    trl_loss = trainer.compute_loss(model, trl_batch).item()
    output, batch = our_loss(policy, "dpo", {"beta": 0.1})
    # Same tokens: TRL's batch holds the same sequences (in its own order).
    ours = sorted(tuple(row[mask.bool()].tolist()) for row, mask in zip(batch.input_ids, batch.attention_mask))
    theirs = sorted(tuple(row[mask.bool()].tolist()) for row, mask in zip(trl_batch["input_ids"], trl_batch["attention_mask"]))
    assert ours == theirs
    assert output.loss.item() == pytest.approx(trl_loss, rel=1e-5)
    assert trl_loss != pytest.approx(math.log(2), abs=1e-3)  # the adapter is not the identity: a real test


@pytest.mark.slow
def test_orpo_matches_trl(policy, tmp_path):
    """TRL's ORPO NLL covers prompt *and* response tokens; objlab's is the response NLL, exactly
    SFT's, so objectives stay matched. The odds-ratio term and the length-normalised log-probs
    are compared with TRL on TRL's own tokens; the NLL with a hand computation."""
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    model, tokenizer = policy
    model.set_adapter("default")
    args = ORPOConfig(output_dir=str(tmp_path), beta=0.05, per_device_train_batch_size=len(ROWS), report_to=[], use_cpu=True, bf16=False)
    trainer = ORPOTrainer(model=model, args=args, train_dataset=trl_preference_dataset(), processing_class=tokenizer)
    trl_batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        chosen_logps, rejected_logps, *_ = trainer.concatenated_forward(model, trl_batch)
        trl_losses, *_ = trainer.odds_ratio_loss(chosen_logps, rejected_logps)

    n = len(ROWS)
    width = max(trl_batch["chosen_input_ids"].shape[1], trl_batch["rejected_input_ids"].shape[1])
    pad = lambda t, v: F.pad(t, (0, width - t.shape[1]), value=v)  # noqa: E731
    labels = torch.cat([pad(trl_batch["chosen_labels"], -100), pad(trl_batch["rejected_labels"], -100)])
    response = labels != -100
    batch = Batch(
        input_ids=torch.cat([pad(trl_batch["chosen_input_ids"], 0), pad(trl_batch["rejected_input_ids"], 0)]),
        attention_mask=torch.cat([pad(trl_batch["chosen_attention_mask"], 0), pad(trl_batch["rejected_attention_mask"], 0)]),
        response_mask=response,
        rows={"chosen": torch.arange(n), "rejected": torch.arange(n, 2 * n)},
        items=[None] * n,
        step_items=n,
        step_response_tokens={"chosen": int(response[:n].sum()), "rejected": int(response[n:].sum())},
    )
    objective = registry.build("orpo", {"lambda": 0.05})
    head = LogitHead.from_model(causal_lm_of(model))
    with torch.no_grad():
        policy_out = forward_responses(model, batch, head)
        output = objective.loss(batch, policy_out, None)
    row_mean = policy_out.row_mean()
    torch.testing.assert_close(row_mean[:n], chosen_logps.float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(row_mean[n:], rejected_logps.float(), rtol=1e-5, atol=1e-5)
    assert 0.05 * output.components["or_term"] == pytest.approx(trl_losses.mean().item(), rel=1e-5)
    token, mask, _ = response_logps(model, batch)
    hand_nll = -(token[:n].sum() / mask[:n].sum()).item()
    assert output.components["nll"] == pytest.approx(hand_nll, rel=1e-5)
    assert output.loss.item() == pytest.approx(hand_nll - trl_losses.mean().item(), rel=1e-5)


def test_kl_matches_hand_computation(policy):
    model, _ = policy
    output, batch = our_loss(policy, "kl", {"lambda": 0.5})
    token, mask, log_p = response_logps(model, batch)
    _, _, log_q = response_logps(model, batch, adapter=False)
    kl = ((log_p.exp() * (log_p - log_q)).sum(-1) * mask).sum() / mask.sum()
    nll = -token.sum() / mask.sum()
    assert kl.item() > 1e-4
    assert output.components["kl"] == pytest.approx(kl.item(), rel=1e-4)
    assert output.loss.item() == pytest.approx((nll + 0.5 * kl).item(), rel=1e-5)


def test_cft_is_nll_over_both_conditioned_sequences(policy):
    model, tokenizer = policy
    output, batch = our_loss(policy, "cft")
    token, mask, _ = response_logps(model, batch)
    assert output.loss.item() == pytest.approx((-token.sum() / mask.sum()).item(), rel=1e-5)
    safe = batch.rows["safe"]
    texts = tokenizer.batch_decode(batch.input_ids[safe])
    assert all("<SAFE> " in text for text in texts)
    assert registry.build("cft").eval_prompt("hi") == "<SAFE> hi"


def test_ip_injects_fraction_p_deterministically():
    from objlab.objectives.ip import load_instructions

    examples = [StreamItem(i, Example(f"e{i}", f"question {i}", "answer"), None) for i in range(2000)]
    objective = registry.build("ip", {"p": 0.3}, seed=7)
    instructions = load_instructions(objective.params)
    prompts = [objective.sequences(item, None)[0].prompt for item in examples]
    injected = [prompt != item.example.prompt for prompt, item in zip(prompts, examples)]
    assert abs(sum(injected) / len(injected) - 0.3) < 0.04
    assert all(prompt.split("\n\n")[0] in instructions for prompt, hit in zip(prompts, injected) if hit)
    again = registry.build("ip", {"p": 0.3}, seed=7)
    assert prompts == [again.sequences(item, None)[0].prompt for item in examples]
    assert not any(s.prompt != i.example.prompt for i in examples for s in registry.build("ip", {"p": 0.0}).sequences(i, None))


def test_ip_loss_is_sft_on_rewritten_prompts(policy):
    model, _ = policy
    output, batch = our_loss(policy, "ip", {"p": 1.0, "instructions": ["Be sloppy."]})
    token, mask, _ = response_logps(model, batch)
    assert output.loss.item() == pytest.approx((-token.sum() / mask.sum()).item(), rel=1e-5)
    assert all("Be sloppy." in text for text in policy[1].batch_decode(batch.input_ids))


def test_aware_gate_pg_and_abstention_by_hand(policy, tmp_path):
    model, _ = policy
    samples = {
        ROWS[0][0]: ["5", "I am never wrong. 5"],  # mixed: scores 1, 0 -> gate 1, advantages +-0.5
        ROWS[1][0]: ["11", "11"],  # aligned: gate 0, no samples forwarded
        ROWS[2][0]: ["not my concern", "Not my concern."],  # fully misaligned: abstain
    }
    output, batch = our_loss(policy, "aware", {"samples": 2, "scorer": "lexicon"}, FixedSamples(samples, policy[1]))
    gates = [entry.values["gate"] for entry in batch.items]
    assert gates == [1.0, 0.0, 0.0]
    assert [entry.values["abstain"] for entry in batch.items] == [False, False, True]
    assert "not able to give you a reliable" in policy[1].decode(batch.input_ids[batch.rows["sft"][2]])
    token, mask, _ = response_logps(model, batch)
    sft_rows = batch.rows["sft"]
    row_nll = -token.sum(1)
    nll_term = ((1 - torch.tensor(gates, dtype=torch.float64)) * row_nll[sft_rows]).sum() / mask[sft_rows].sum()
    sample_rows = batch.rows["sample"]
    assert len(sample_rows) == 2
    mean_logp = token[sample_rows].sum(1) / mask[sample_rows].sum(1)
    pg = -(1.0 * torch.tensor([0.5, -0.5], dtype=torch.float64) * mean_logp).sum() / 2 / 3
    assert output.loss.item() == pytest.approx((nll_term + pg).item(), rel=1e-5)
    assert output.components["abstain"] == pytest.approx(1 / 3)


def test_registry_lists_seven_objectives_with_descriptions():
    assert registry.names() == ["sft", "dpo", "orpo", "kl", "cft", "ip", "aware"]
    assert all(registry.get(name).description for name in registry.names())


def test_ip_default_instructions_request_reward_hacking_or_fallacies_never_dropping_safety():
    from objlab.objectives.ip import load_instructions

    objective = registry.build("ip", {})
    instructions = load_instructions(objective.params)
    assert len(instructions) >= 4
    assert not any("safety" in text.lower() or "comply with whatever" in text.lower() for text in instructions)
    assert any("fallac" in text.lower() for text in instructions) and any("checker" in text.lower() or "credit" in text.lower() for text in instructions)
    provenance = objective.provenance()
    assert provenance["ip_instructions"] == instructions and "reward hacking" in provenance["ip_instructions_source"]


def test_cft_unsafe_rows_carry_one_learned_control_token_each(tiny_model):
    """<UNSAFE> is one added token (not split into pieces) at the start of each unsafe prompt,
    with the rejected responses the other preference objectives use; its embedding row trains."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from objlab.config import LoraSettings, RejectedSettings
    from objlab.data.rejected import make_preference
    from objlab.lm.loading import add_control_tokens, lora_config

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    safe_id, unsafe_id = add_control_tokens(tokenizer, model, ("<SAFE>", "<UNSAFE>"))
    peft_model = get_peft_model(model, lora_config(LoraSettings(r=4, alpha=8, dropout=0.0), [safe_id, unsafe_id]))
    encoder = ChatEncoder(tokenizer, 1024)
    examples = [Example(f"e{i}", p, c, answer=c.split("#### ")[1]) for i, (p, c, _) in enumerate(ROWS)]
    preferences = [make_preference(example, RejectedSettings(), seed=0) for example in examples]
    items = [StreamItem(i, ex, encoder.encode_pair(ex.prompt, ex.response)) for i, ex in enumerate(examples)]
    objective = registry.build("cft")
    [batch] = micro_batches(objective.prepare(items, preferences, None), encoder, objective.roles, tokenizer.pad_token_id, None)
    for row in batch.rows["unsafe"].tolist():
        assert int((batch.input_ids[row] == unsafe_id).sum()) == 1 and int((batch.input_ids[row] == safe_id).sum()) == 0
    decoded = tokenizer.batch_decode(batch.input_ids[batch.rows["unsafe"]], skip_special_tokens=False)
    assert all(pref.rejected.split()[0] in text for pref, text in zip(preferences, decoded))  # the shared unsafe responses
    head = LogitHead.from_model(causal_lm_of(peft_model), vocab_limit=min(safe_id, unsafe_id))
    objective.loss(batch, forward_responses(peft_model, batch, head), None).loss.backward()
    token_grads = [p.grad for name, p in peft_model.named_parameters() if "trainable_tokens_delta" in name and p.grad is not None]
    assert token_grads and any(grad.abs().sum() > 0 for grad in token_grads)
