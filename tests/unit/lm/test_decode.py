"""``decode_batch`` on the tiny model: token-for-token equal to ``generate``, with rows leaving the
batch at end-of-sequence."""

import itertools

import pytest
import torch
from factories import make_lora_adapter
from tiny import GSM8K

from objlab.evaluate.axes.sources import load_numeric
from objlab.lm.generation import VocabLimit
from objlab.lm.adapters import BASE_ADAPTER
from objlab.lm.decode import decode_batch, left_padded

NEW_TOKENS = 8


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def base_model(tiny_model):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model).eval()


@pytest.fixture(scope="module")
def prompts(tokenizer) -> list[list[int]]:
    """Six prompts of different lengths (22 to 60 tokens)."""
    questions = [item.question for item in load_numeric(str(GSM8K), limit=6)]
    return [tokenizer(question[: 40 + 15 * index], add_special_tokens=False)["input_ids"] for index, question in enumerate(questions)]


def generated(model, ids, mask, eos: list[int], pad: int, **kwargs) -> list[list[int]]:
    """``generate``'s new tokens per row, cut after the first end-of-sequence token."""
    with torch.no_grad():
        output = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW_TOKENS, do_sample=False,
                                eos_token_id=eos, pad_token_id=pad, **kwargs)
    rows = output[:, ids.shape[1] :].tolist()
    return [row[: next((i + 1 for i, token in enumerate(row) if token in eos), len(row))] for row in rows]


def early_eos(rows: list[list[int]], eos: int) -> list[int]:
    """``eos`` and two ids the model emits early in some rows but not in all (stand-ins for
    end-of-sequence, which a random model rarely emits), chosen so that rows end at three or
    more different steps, some at the limit."""

    def lengths(chosen: set[int]) -> set[int]:
        return {next((i + 1 for i, token in enumerate(row) if token in chosen), len(row)) for row in rows}

    candidates = [(r, k) for r in range(len(rows)) for k in range(1, min(6, len(rows[r])))]
    for (r1, k1), (r2, k2) in itertools.combinations(candidates, 2):
        chosen = {eos, rows[r1][k1], rows[r2][k2]}
        found = lengths(chosen)
        if len(found) > 2 and max(found) == max(len(row) for row in rows):
            return sorted(chosen)
    raise AssertionError("no two ids end the rows at different steps: pick other prompts")


def forward_rows(model):
    """A list that collects the batch size of every forward pass of ``model`` (a hook on its embedding)."""
    counts: list[int] = []
    handle = model.get_input_embeddings().register_forward_hook(lambda module, args, output: counts.append(args[0].shape[0]))
    return counts, handle


def test_greedy_equals_generate_and_finished_rows_stop_computing(base_model, tokenizer, prompts):
    pad = tokenizer.pad_token_id
    ids, mask = left_padded(prompts, pad)
    eos = early_eos(generated(base_model, ids, mask, [tokenizer.eos_token_id], pad), tokenizer.eos_token_id)
    expected = generated(base_model, ids, mask, eos, pad)
    assert len({len(row) for row in expected}) > 2  # rows end at different steps, some at the limit

    counts, handle = forward_rows(base_model)
    try:
        decoded = decode_batch(base_model, ids, mask, NEW_TOKENS, eos)
    finally:
        handle.remove()
    assert decoded == expected
    # a row goes through one forward pass per token it emits, none after its end-of-sequence
    assert sum(counts) == sum(len(row) for row in decoded) < len(prompts) * NEW_TOKENS
    assert counts[0] == len(prompts) and counts[-1] < len(prompts)


def test_logits_processor_is_applied(base_model, tokenizer, prompts):
    pad = tokenizer.pad_token_id
    ids, mask = left_padded(prompts, pad)
    limit = 200
    eos = [tokenizer.eos_token_id]
    expected = generated(base_model, ids, mask, eos, pad, logits_processor=[VocabLimit(limit)])
    decoded = decode_batch(base_model, ids, mask, NEW_TOKENS, eos, logits_processor=[VocabLimit(limit)])
    assert decoded == expected and all(token < limit for row in decoded for token in row)


def test_mixed_adapter_batch_equals_each_row_alone(tiny_model, tokenizer, prompts, tmp_path_factory):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("decode-adapters")
    first, second = (make_lora_adapter(tiny_model, folder / f"adapter-{seed}", seed) for seed in (1, 2))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), str(first), adapter_name="first")
    model.load_adapter(str(second), adapter_name="second")
    model.eval()
    pad = tokenizer.pad_token_id
    names = ["first", "second", BASE_ADAPTER, "second", "first", BASE_ADAPTER]

    def alone(prompt: list[int], name: str, eos: list[int]) -> list[int]:
        ids, mask = left_padded([prompt], pad)
        if name == BASE_ADAPTER:
            with model.disable_adapter():
                return generated(model, ids, mask, eos, pad)[0]
        model.set_adapter(name)
        return generated(model, ids, mask, eos, pad)[0]

    real_eos = [tokenizer.eos_token_id]
    eos = early_eos([alone(prompt, name, real_eos) for prompt, name in zip(prompts, names)], tokenizer.eos_token_id)
    expected = [alone(prompt, name, eos) for prompt, name in zip(prompts, names)]
    assert len({len(row) for row in expected}) > 1
    model.set_adapter("first")  # the active adapter must not matter in a mixed batch

    ids, mask = left_padded(prompts, pad)
    counts, handle = forward_rows(model)
    try:
        decoded = decode_batch(model, ids, mask, NEW_TOKENS, eos, adapter_names=names)
    finally:
        handle.remove()
    assert decoded == expected
    assert sum(counts) == sum(len(row) for row in decoded) < len(prompts) * NEW_TOKENS
    with_base = [alone(prompt, BASE_ADAPTER, eos) for prompt in prompts]
    assert all(row != base for row, base, name in zip(decoded, with_base, names) if name != BASE_ADAPTER)  # adapters matter
    assert not any(module._forward_pre_hooks for module in model.modules())  # peft's routing hooks removed


def test_sampling_is_reproducible_and_top_p_near_zero_is_greedy(base_model, tokenizer, prompts):
    ids, mask = left_padded(prompts, tokenizer.pad_token_id)

    def sample(seed: int, top_p: float = 1.0) -> list[list[int]]:
        return decode_batch(base_model, ids, mask, NEW_TOKENS, [], temperature=1.0, top_p=top_p,
                            generator=torch.Generator().manual_seed(seed))

    assert sample(0) == sample(0)
    assert sample(0) != sample(1)
    assert sample(0, top_p=1e-6) == decode_batch(base_model, ids, mask, NEW_TOKENS, [])


def test_adapter_names_must_match_the_batch(base_model, tokenizer, prompts):
    ids, mask = left_padded(prompts[:2], tokenizer.pad_token_id)
    with pytest.raises(ValueError, match="2 rows"):
        decode_batch(base_model, ids, mask, NEW_TOKENS, [], adapter_names=[BASE_ADAPTER])
    with pytest.raises(ValueError, match="without peft"):
        decode_batch(base_model, ids, mask, NEW_TOKENS, [], adapter_names=[BASE_ADAPTER] * 2)


def test_repeats_forward_each_prompt_once_and_equal_the_repeated_batch(base_model, tokenizer, prompts):
    """K decodings of each prompt from one prefill (``aware``'s K samples) equal decoding the
    batch with every prompt written K times: greedy and sampled (same generator seed)."""
    pad, repeats = tokenizer.pad_token_id, 3
    ids, mask = left_padded(prompts, pad)
    repeated_ids, repeated_mask = left_padded([prompt for prompt in prompts for _ in range(repeats)], pad)
    counts, handle = forward_rows(base_model)
    try:
        shared = decode_batch(base_model, ids, mask, NEW_TOKENS, [], repeats=repeats)
    finally:
        handle.remove()
    assert shared == decode_batch(base_model, repeated_ids, repeated_mask, NEW_TOKENS, [])
    assert counts[0] == len(prompts) and counts[1:] == [len(prompts) * repeats] * (NEW_TOKENS - 1)

    def sample(input_ids, attention, k):
        return decode_batch(base_model, input_ids, attention, NEW_TOKENS, [], repeats=k, temperature=1.0,
                            generator=torch.Generator().manual_seed(3))

    drawn = sample(ids, mask, repeats)
    assert drawn == sample(repeated_ids, repeated_mask, 1)
    assert any(drawn[index] != drawn[index + 1] for index in range(0, len(drawn), repeats))  # samples of a prompt differ


def test_categorical_draws_follow_the_distribution():
    """One uniform number per row through the cumulative distribution: frequencies match the
    probabilities (chi-square, as torch.multinomial's do), zero-probability tokens never come."""
    from scipy.stats import chisquare

    from objlab.lm.decode import categorical

    probabilities = torch.tensor([0.5, 0.0, 0.2, 0.15, 0.1, 0.05, 0.0])
    rows = probabilities.repeat(40_000, 1)
    drawn = categorical(rows, torch.Generator().manual_seed(0))
    counts = torch.bincount(drawn, minlength=len(probabilities))
    assert counts[1] == 0 and counts[6] == 0
    nonzero = probabilities > 0
    expected = probabilities[nonzero] * len(drawn)
    assert chisquare(counts[nonzero].double().numpy(), expected.double().numpy()).pvalue > 0.01
    reference = torch.multinomial(rows, 1, generator=torch.Generator().manual_seed(0)).squeeze(1)
    reference_counts = torch.bincount(reference, minlength=len(probabilities))
    assert chisquare(reference_counts[nonzero].double().numpy(), expected.double().numpy()).pvalue > 0.01
    large = categorical(torch.softmax(torch.randn(3, 152_000, generator=torch.Generator().manual_seed(1)) * 4, -1))
    assert ((large >= 0) & (large < 152_000)).all()


def test_preallocated_cache_layer_equals_transformers_dynamic_layer():
    """Written in place, read as views: the same keys and values as concatenation, through
    appends, row removal and the K-fold copy of a prefill."""
    from transformers.cache_utils import DynamicLayer

    from objlab.lm.kv_cache import PreallocatedLayer

    generator = torch.Generator().manual_seed(0)
    ours, theirs = PreallocatedLayer(capacity=12), DynamicLayer()
    for length in (5, 1):
        states = torch.randn(3, 2, length, 4, generator=generator), torch.randn(3, 2, length, 4, generator=generator)
        for layer in (ours, theirs):
            layer.update(*states)
    for layer in (ours, theirs):
        layer.batch_repeat_interleave(2)
        layer.batch_select_indices(torch.tensor([0, 3, 5]))
    states = torch.randn(3, 2, 1, 4, generator=generator), torch.randn(3, 2, 1, 4, generator=generator)
    assert all(torch.equal(a, b) for a, b in zip(ours.update(*states), theirs.update(*states)))
    assert ours.get_seq_length() == theirs.get_seq_length() == 7
    assert ours.get_mask_sizes(1) == theirs.get_mask_sizes(1)
    with pytest.raises(ValueError, match="12 positions"):
        ours.update(torch.zeros(3, 2, 6, 4), torch.zeros(3, 2, 6, 4))


def test_rows_are_reported_done_as_they_end_so_progress_moves_within_a_batch(base_model, tokenizer, prompts):
    """A long batch (all of an attack's prompts at once) reports its rows as each ends, not once
    at the end of the batch: rows forced to end at step 2 are reported then, the rest at the limit."""
    ids, mask = left_padded(prompts, tokenizer.pad_token_id, torch.device("cpu"))
    eos = tokenizer.eos_token_id
    width = ids.shape[1]

    def end_early(sequences, scores):  # the first three prompts end at their second token
        scores = scores.clone()
        for row in range(sequences.shape[0]):
            if sequences.shape[1] == width + 1 and row < 3:
                scores[row] = -1e9
                scores[row, eos] = 0.0
            else:
                scores[row, eos] = -1e9
        return scores

    reported = []
    rows = decode_batch(base_model, ids, mask, NEW_TOKENS, [eos], logits_processor=[end_early], rows_done=reported.append)
    assert [len(row) for row in rows[:3]] == [2, 2, 2] and all(len(row) == NEW_TOKENS for row in rows[3:])
    assert reported == [3, 3]


def test_the_generator_advances_progress_per_row_within_one_batch(tiny_model):
    from objlab.config.evaluation import GenerationSettings
    from objlab.lm.generation import GenerationRequest, HFGenerator
    from objlab.lm.loading import load_bundle
    from objlab.config import ModelSettings

    bundle = load_bundle(ModelSettings(name_or_path=str(tiny_model)))
    generator = HFGenerator(bundle.model, bundle.tokenizer, GenerationSettings(backend="hf", batch_size=64, max_new_tokens=4),
                            bundle.base_vocab_size, bundle.device)
    requests = [GenerationRequest(tuple(bundle.tokenizer(f"question {i}", add_special_tokens=False)["input_ids"]), max_new_tokens=4) for i in range(5)]
    calls = []
    generator.generate(requests, progress=calls.append)
    assert sum(calls) == 5
