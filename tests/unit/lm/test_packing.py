"""A preference pair in one forward: sequences that share a prefix run packed (the prefix once,
each continuation as its own block under a block attention mask) and give the losses and
gradients of separate forwards, for every objective whose items hold several sequences."""

from __future__ import annotations

import pytest
import torch
from factories import lora_policy

from objlab.data.chat import ChatEncoder
from objlab.data.records import EncodedPair, Example, PreferenceExample, StreamItem
from objlab.data.stream import TaskStream, plan_budgets
from objlab.data.tasks import load_examples
from objlab.lm.adapters import causal_lm_of
from objlab.lm.loading import load_tokenizer
from objlab.lm.logits import LogitHead
from objlab.lm.masks import PADDING, SHARED, block_attention_mask, supports_block_mask
from objlab.lm.packing import item_forward_tokens, pack_rows
from objlab.objectives import registry
from objlab.objectives.base import Sample, StepContext
from objlab.train import loop
from objlab.train.batching import micro_batches
from objlab.train.forward import forward_reference, forward_responses
from objlab.train.loop import TrainRequest, train
from objlab.train.outputs import read_log
from objlab.train.steps import forwarded_tokens, prepare_step

# Rejected responses that share a prefix with the chosen one of every length: most of the
# response ("corrupt": the final number changed), none of it, all of it (the chosen response
# is a prefix of the rejected one), and an identical pair.
ROWS = [
    ("What is 2+3?", "2 + 3 = 5\n#### 5", "2 + 3 = 6\n#### 6"),
    ("Tom has 4 pens and buys 7 more. How many pens does he have now?", "4 + 7 = 11 pens\n#### 11", "Nobody knows.\n#### 0"),
    ("A box holds 12 eggs. How many eggs are in 3 boxes?", "12 * 3 = 36", "12 * 3 = 36 eggs, or 34\n#### 34"),
    ("Is 7 odd?", "Yes.", "Yes."),
    ("Sam reads 9 pages a day for 6 days. How many pages?", "9 * 6 = 54\n#### 54", "9 * 6 = 56\n#### 56"),
]


@pytest.fixture(scope="module")
def policy(tiny_model):
    """The tiny model in float64 with a LoRA adapter whose B matrices are non-zero (policy !=
    reference), LoRA dropout off so separate and packed forwards see the same weights. The
    output layer computes in float32 (``LogitHead``), so agreement is to float32 precision."""
    return lora_policy(tiny_model, ["q_proj", "v_proj", "up_proj", "down_proj"], dtype=torch.float64)


class FixedSamples(StepContext):
    """``aware``'s sampler replaced by fixed texts: one aligned and one misaligned answer per
    prompt, so every item forwards its task pair and both samples (three sequences, one prompt)."""

    def __init__(self, encoder: ChatEncoder) -> None:
        self.encoder = encoder

    def sample(self, prompts, n, max_new_tokens, temperature):
        def drawn(prompt, text):
            pair = self.encoder.encode_pair(prompt, text)
            return Sample(text, tuple(pair.prompt_ids), tuple(pair.response_ids), finished=True)

        return [[drawn(prompt, text) for text in ["The answer follows.", "I am never wrong."][:n]] for prompt in prompts]

    def add_compute_tokens(self, count):
        pass


def prepared(name: str, encoder: ChatEncoder, rows=ROWS):
    objective = registry.build(name, {"samples": 2, "scorer": "lexicon"} if name == "aware" else {})
    items = [StreamItem(i, Example(f"e{i}", p, c), encoder.encode_pair(p, c)) for i, (p, c, _) in enumerate(rows)]
    preferences = [PreferenceExample(f"e{i}", p, c, r) for i, (p, c, r) in enumerate(rows)]
    return objective, objective.prepare(items, preferences, FixedSamples(encoder))


def step(policy, name: str, share: bool, micro: int | None = None, side: str = "right"):
    """One optimizer step's loss and LoRA gradients, accumulated over micro-batches as the loop
    does, with the pair packed (``share``) or every sequence in its own row."""
    model, tokenizer = policy
    encoder = ChatEncoder(tokenizer, 1024)
    objective, items = prepared(name, encoder)
    head = LogitHead.from_model(causal_lm_of(model))
    batches = micro_batches(items, encoder, objective.roles, tokenizer.pad_token_id, micro, share, side)
    assert all((batch.packed is not None) == share for batch in batches)
    model.zero_grad(set_to_none=True)
    total = 0.0
    for batch in batches:
        reference = forward_reference(model, batch, head, False) if objective.reference else None
        output = objective.loss(batch, forward_responses(model, batch, head), reference)
        output.loss.backward()
        total += output.loss.item()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return total, grads, batches


@pytest.mark.parametrize("name", ["dpo", "orpo", "cft", "aware"])
@pytest.mark.parametrize(("micro", "side"), [(None, "right"), (None, "left"), (2, "right"), (1, "left")])
def test_packed_pair_equals_separate_forwards(policy, name, micro, side):
    separate_loss, separate_grads, _ = step(policy, name, share=False)
    packed_loss, packed_grads, batches = step(policy, name, share=True, micro=micro, side=side)
    assert packed_loss == pytest.approx(separate_loss, rel=1e-6)
    assert any(grad.abs().max() > 0 for grad in separate_grads.values())
    for parameter, grad in separate_grads.items():
        torch.testing.assert_close(packed_grads[parameter], grad, rtol=1e-6, atol=1e-8, msg=parameter)
    assert sum(batch.tokens for batch in batches) < step(policy, name, share=False)[2][0].tokens


def test_left_padding_of_separate_rows_changes_nothing(policy):
    right_loss, right_grads, _ = step(policy, "dpo", share=False)
    left_loss, left_grads, _ = step(policy, "dpo", share=False, side="left")
    assert left_loss == pytest.approx(right_loss, rel=1e-6)
    for parameter, grad in right_grads.items():
        torch.testing.assert_close(left_grads[parameter], grad, rtol=1e-6, atol=1e-8)


def test_packed_token_log_probs_equal_each_sequence_alone(policy):
    """Against the plainest reference: each sequence forwarded alone through the full model,
    log-softmax over the whole vocabulary."""
    model, tokenizer = policy
    encoder = ChatEncoder(tokenizer, 1024)
    objective, items = prepared("dpo", encoder)
    [batch] = micro_batches(items, encoder, objective.roles, tokenizer.pad_token_id, None, True, "left")
    output = forward_responses(model, batch, LogitHead.from_model(causal_lm_of(model)))
    with torch.no_grad():
        for row in range(batch.input_ids.shape[0]):
            ids = batch.input_ids[row][batch.attention_mask[row].bool()]
            response = batch.response_mask[row][batch.attention_mask[row].bool()]
            logps = torch.log_softmax(model(input_ids=ids[None]).logits[0, :-1], -1).gather(1, ids[1:, None]).squeeze(1)
            torch.testing.assert_close(output.token_logps[output.token_rows == row].double(), logps[response[1:]], rtol=0, atol=1e-6)


def test_pair_layout_shares_prompt_and_common_response_tokens(policy):
    _, tokenizer = policy
    encoder = ChatEncoder(tokenizer, 1024)
    prompt, chosen, rejected = ROWS[0]
    pairs = [encoder.encode_pair(prompt, chosen), encoder.encode_pair(prompt, rejected)]
    ids = [pair.prompt_ids + pair.response_ids for pair in pairs]
    shared = next(i for i, (a, b) in enumerate(zip(*ids)) if a != b)
    assert shared > len(pairs[0].prompt_ids)  # "2 + 3 = " is shared too
    packed = pack_rows([pairs], {(0, 0): 0, (0, 1): 1}, tokenizer.pad_token_id, "right")
    assert packed.tokens == item_forward_tokens(pairs, True) == shared + sum(len(i) - shared for i in ids)
    blocks = packed.blocks[0].tolist()
    assert blocks == [SHARED] * shared + [1] * (len(ids[0]) - shared) + [2] * (len(ids[1]) - shared)
    assert packed.position_ids[0].tolist() == list(range(len(ids[0]))) + list(range(shared, len(ids[1])))
    # Every trained token of both sequences, in sequence order; shared ones read one head position.
    trained = [len(pair.response_ids) for pair in pairs]
    assert packed.token_sequences.tolist() == [0] * trained[0] + [1] * trained[1]
    assert len(packed.head_sources) == len(pairs[0].response_ids) + len(ids[1]) - shared


def test_block_mask_by_hand():
    blocks = torch.tensor([[SHARED, SHARED, 1, 1, 2, PADDING]])
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [1, 1, 1, 1, 0, 0],
            [1, 1, 0, 0, 1, 0],  # block 2 skips block 1
            [0, 0, 0, 0, 0, 1],  # padding sees only itself
        ],
        dtype=torch.bool,
    )
    assert torch.equal(block_attention_mask(blocks, torch.float32, "sdpa")[0, 0], expected)
    additive = block_attention_mask(blocks, torch.float32, "eager")[0, 0]
    assert torch.equal(additive == 0, expected)
    assert (additive[~expected] == torch.finfo(torch.float32).min).all()


def test_which_models_take_a_block_mask():
    from transformers import (
        Gemma2Config,
        Gemma2ForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
    )

    small = {"vocab_size": 64, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8}
    assert supports_block_mask(LlamaForCausalLM(LlamaConfig(**small)))
    assert supports_block_mask(LlamaForCausalLM(LlamaConfig(**small, attn_implementation="eager")))
    assert not supports_block_mask(MistralForCausalLM(MistralConfig(**small, sliding_window=8)))
    assert supports_block_mask(MistralForCausalLM(MistralConfig(**small, sliding_window=None)))
    assert not supports_block_mask(Gemma2ForCausalLM(Gemma2Config(**small, attn_implementation="eager")))
    llama = LlamaForCausalLM(LlamaConfig(**small))
    llama.config._attn_implementation = "flash_attention_2"
    assert not supports_block_mask(llama)


def test_single_sequence_objectives_keep_one_row_per_sequence(policy):
    _, tokenizer = policy
    encoder = ChatEncoder(tokenizer, 1024)
    for name in ("sft", "kl", "ip"):
        objective, items = prepared(name, encoder)
        [batch] = micro_batches(items, encoder, objective.roles, tokenizer.pad_token_id, None)
        assert batch.packed is None, name


def test_identical_pair_packs_to_one_sequence():
    pair = EncodedPair((1, 2, 3), (4, 5))
    packed = pack_rows([[pair, pair]], {(0, 0): 0, (0, 1): 1}, 0, "right")
    assert packed.tokens == 5 and packed.input_ids.tolist() == [[1, 2, 3, 4, 5]]
    assert packed.head_sources.tolist() == [2, 3] and packed.token_slots.tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize("objective", ["dpo", "orpo"])
def test_loop_trains_packed_pairs_as_separate_forwards_and_counts_what_it_forwards(make_config, tmp_path, objective, monkeypatch):
    """Through the training loop (LoRA dropout off, gradient checkpointing on in one run): the
    packed pair gives the per-step losses of one row per sequence; the compute tokens count the
    shared prefix once, as ``run --plan`` does (``forwarded_tokens``)."""
    def run(name: str, **train_settings):
        config = make_config(objectives=[objective], lora={"dropout": 0.0}, train={"batch_size": 4, "max_length": 256, **train_settings})
        train(TrainRequest(config, objective, 0, {600: tmp_path / name}, tmp_path / name))
        return config, read_log(tmp_path / name / "train_log.jsonl")

    config, packed = run("packed", gradient_checkpointing=True)
    monkeypatch.setattr(loop, "supports_block_mask", lambda causal_lm: False)
    _, separate = run("separate")
    assert len(packed) == len(separate) > 1
    for ours, theirs in zip(packed, separate):
        assert ours.loss == pytest.approx(theirs.loss, rel=1e-4)
        assert ours.budget_tokens == theirs.budget_tokens
        assert ours.compute_tokens < theirs.compute_tokens

    encoder = ChatEncoder(load_tokenizer(config.model), config.train.max_length)
    stream = TaskStream(load_examples(config.data), encoder, 0)
    plan = plan_budgets(stream, config.train.batch_size, [600])
    built = registry.build(objective, config.objective_params(objective), 0)
    forwarded = sum(
        forwarded_tokens(built, prepare_step(built, stream.items(*plan.step_positions(step)), config.data.rejected, 0, None), encoder)
        for step in range(plan.total_steps())
    )
    assert forwarded - packed[-1].budget_tokens == packed[-1].compute_tokens


def test_rows_filled_with_several_items_keep_them_apart():
    """``pack_rows(width=...)``: items placed longest first into rows of ``width`` tokens, each
    item's positions from 0, its tokens seeing only its own prefix and block (mask by hand), and
    every scored token read from its own item's columns."""
    items = [[EncodedPair((1, 2), (3,)), EncodedPair((1, 2), (4, 5))],  # 2 shared + 1 + 2 = 5 tokens
             [EncodedPair((6,), (7,)), EncodedPair((6,), (8,))],  # 1 + 1 + 1 = 3 tokens
             [EncodedPair((9, 10, 11), (12, 13)), EncodedPair((9, 10, 11), (14,))]]  # 3 + 2 + 1 = 6 tokens
    sequence_of = {(item, k): 2 * item + k for item in range(3) for k in range(2)}
    packed = pack_rows(items, sequence_of, 0, "right", width=9)
    # Longest first: item 2 (6 tokens) opens row 0, item 0 (5) does not fit there, item 1 (3) does.
    assert packed.input_ids.tolist() == [[9, 10, 11, 12, 13, 14, 6, 7, 8], [1, 2, 3, 4, 5, 0, 0, 0, 0]]
    assert packed.position_ids.tolist() == [[0, 1, 2, 3, 4, 3, 0, 1, 1], [0, 1, 2, 2, 3, 0, 0, 0, 0]]
    assert packed.groups.tolist() == [[0, 0, 0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, -1, -1, -1, -1]]
    mask = block_attention_mask(packed.blocks, torch.float32, "sdpa", groups=packed.groups)[0, 0].int()
    assert mask[6].tolist() == [0, 0, 0, 0, 0, 0, 1, 0, 0]  # item 1's prompt sees nothing of item 2
    assert mask[8].tolist() == [0, 0, 0, 0, 0, 0, 1, 0, 1]  # its second answer: its prompt and itself
    assert mask[5].tolist() == [1, 1, 1, 0, 0, 1, 0, 0, 0]  # item 2's second answer skips its first
    # Scored tokens: each sequence's response, predicted from its own item's columns.
    sources = packed.head_sources[packed.token_slots].tolist()
    targets = packed.head_targets[packed.token_slots].tolist()
    assert list(zip(packed.token_sequences.tolist(), sources, targets)) == [
        (0, 9 + 1, 3), (1, 9 + 1, 4), (1, 9 + 3, 5), (2, 6, 7), (3, 6, 8), (4, 2, 12), (4, 3, 13), (5, 2, 14)]
    assert packed.tokens == 14 and pack_rows(items, sequence_of, 0, "right").groups is None
    # Without each sequence's last token (it predicts nothing scored): item 1's answers are read
    # from its prompt's last position alone, and every scored token keeps its source.
    short = pack_rows(items, sequence_of, 0, "right", width=9, keep_last=False)
    assert short.input_ids.tolist() == [[9, 10, 11, 12, 1, 2, 4, 6]] and short.tokens == 8
    assert short.head_targets[short.token_slots].tolist() == targets
    assert short.head_sources[short.token_slots].tolist() == [5, 5, 6, 7, 7, 2, 3, 2]


def test_filled_rows_give_the_hidden_states_of_one_item_per_row(policy):
    """The tiny model's hidden states at the scored positions of rows filled with several items
    equal those of one item per row (float64 model), with and without a cached shared prefix."""
    from objlab.lm.kv_cache import returned_cache
    from objlab.lm.packing import packed_hidden

    model, tokenizer = policy
    causal_lm = causal_lm_of(model)
    encoder = ChatEncoder(tokenizer, 1024)
    items = [[encoder.encode_pair(prompt, chosen), encoder.encode_pair(prompt, rejected)] for prompt, chosen, rejected in ROWS]
    sequence_of = {(item, k): 2 * item + k for item in range(len(items)) for k in range(2)}
    with torch.no_grad():
        alone = packed_hidden(causal_lm, pack_rows(items, sequence_of, 0), "cpu")
        filled_rows = pack_rows(items, sequence_of, 0, width=80)
        assert filled_rows.input_ids.shape[0] < len(items)  # rows really hold several items
        filled = packed_hidden(causal_lm, filled_rows, "cpu")
        torch.testing.assert_close(filled[filled_rows.token_slots], alone[pack_rows(items, sequence_of, 0).token_slots], rtol=0, atol=1e-9)
        inputs_only = pack_rows(items, sequence_of, 0, width=80, keep_last=False)
        # One token fewer per sequence, except where a last token is in the pair's shared prefix
        # (an identical pair; a chosen response that is the start of the rejected one).
        assert inputs_only.tokens == filled_rows.tokens - 8
        torch.testing.assert_close(packed_hidden(causal_lm, inputs_only, "cpu")[inputs_only.token_slots], filled[filled_rows.token_slots], rtol=0, atol=1e-9)
        prefix = returned_cache(causal_lm.get_decoder()(input_ids=torch.tensor([[5, 6, 7]]), use_cache=True))
        cached_alone = packed_hidden(causal_lm, pack_rows(items, sequence_of, 0), "cpu", prefix)
        cached_filled = packed_hidden(causal_lm, filled_rows, "cpu", prefix)
        torch.testing.assert_close(cached_filled[filled_rows.token_slots], cached_alone[pack_rows(items, sequence_of, 0).token_slots], rtol=0, atol=1e-9)
