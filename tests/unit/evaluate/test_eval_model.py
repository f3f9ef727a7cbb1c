"""Generation backends and persona log-probs on the tiny model, against independent references."""

import math

import pytest
import torch
from factories import make_lora_adapter
from tiny import GSM8K, PERSONA

from objlab.config.evaluation import GenerationSettings
from objlab.evaluate.axes.persona import answer_logprobs, encode_choice, p_match
from objlab.evaluate.axes.sources import load_numeric, load_persona
from objlab.lm.generation import GenerationRequest, choose_backend
from objlab.evaluate.session import EvalSession
from objlab.lm.adapters import BASE_ADAPTER


@pytest.fixture(scope="module")
def adapters(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("adapters")
    return [make_lora_adapter(tiny_model, folder / f"adapter-{seed}", seed) for seed in (1, 2)]


@pytest.fixture(scope="module")
def session(tiny_model, tmp_path_factory):
    from tiny import write_config

    from objlab.config import load_config

    path = write_config(tmp_path_factory.mktemp("config") / "config.yaml", tiny_model, eval={"generation": {"backend": "hf"}})
    return EvalSession(load_config(path))


def test_mixed_adapter_batch_equals_each_adapter_alone(session, adapters):
    first, second = (session.target(path) for path in adapters)
    questions = [item.question for item in load_numeric(str(GSM8K), limit=5)]
    prompts = [tuple(session.encoder.encode_prompt(question)) for question in questions]
    names = [first.name, second.name, BASE_ADAPTER]
    settings = GenerationSettings(backend="hf", max_new_tokens=8, batch_size=4)
    mixed = [GenerationRequest(ids, name, 8) for ids in prompts for name in names]  # batches of 4 mix all three
    together = session.generate(mixed, settings)
    for name in names:
        alone = session.generate([GenerationRequest(ids, name, 8) for ids in prompts], settings)
        assert [out.text for out in alone] == [out.text for req, out in zip(mixed, together) if req.adapter == name]
    by_adapter = {name: [out.text for req, out in zip(mixed, together) if req.adapter == name] for name in names}
    assert by_adapter[first.name] != by_adapter[BASE_ADAPTER] != by_adapter[second.name]  # the adapters really differ


def test_static_cache_backend_matches_dynamic(session, adapters):
    target = session.target(adapters[0])
    prompts = [tuple(session.encoder.encode_prompt(item.question)) for item in load_numeric(str(GSM8K), limit=3)]
    requests = [GenerationRequest(ids, name, 6) for ids in prompts for name in (target.name, BASE_ADAPTER)]
    dynamic = session._hf(GenerationSettings(batch_size=4), static=False).generate(requests)
    static = session._hf(GenerationSettings(batch_size=4), static=True).generate(requests)
    assert [out.text for out in dynamic] == [out.text for out in static]
    assert all(out.new_tokens == 6 or out.finished for out in dynamic)


def test_static_path_sees_few_shapes_and_decodes_the_same(session, adapters, monkeypatch):
    """hf-static compiles its decoding step once per shape on a GPU, so the shapes it hands
    ``generate`` are bounded: rows a power of two up to the batch size (partial batches filled
    with copies whose outputs are dropped), widths a multiple of 64. Checked on CPU by recording
    every shape: however many requests and however long their prompts, the outputs stay those
    of the ``hf`` path, and after ``warm_up`` no shape is new."""
    target = session.target(adapters[0])
    questions = [item.question for item in load_numeric(str(GSM8K), limit=13)]
    prompts = [tuple(session.encoder.encode_prompt(question[: 30 + 25 * (index % 5)])) for index, question in enumerate(questions)]
    assert len({len(prompt) for prompt in prompts}) > 5
    settings = GenerationSettings(batch_size=8, max_new_tokens=5)
    static, dynamic = session._hf(settings, static=True), session._hf(settings, static=False)
    seen: list[tuple[int, int]] = []
    generate = session.model.generate
    monkeypatch.setattr(session.model, "generate", lambda input_ids, **kwargs: seen.append(tuple(input_ids.shape)) or generate(input_ids=input_ids, **kwargs))
    for count in (1, 3, 5, 8, 11, 13):
        requests = [GenerationRequest(ids, name, 5) for ids, name in zip(prompts[:count], [target.name, BASE_ADAPTER] * 7)]
        seen.clear()
        outputs = static.generate(requests)
        assert [out.text for out in outputs] == [out.text for out in dynamic.generate(requests)]
        assert {rows for rows, _ in seen} <= {1, 2, 4, 8} and all(width % 64 == 0 for _, width in seen)
        assert [shape[:2] for shape in static.static_shapes(requests)] == list(dict.fromkeys(seen))
    seen.clear()
    assert static.warm_up(requests) == len(set(static.static_shapes(requests)))
    warmed = set(seen)
    seen.clear()
    static.generate(requests)
    assert set(seen) <= warmed


def test_backend_choice():
    assert choose_backend("auto", torch.device("cpu")) == "hf"
    assert choose_backend("hf-static", torch.device("cpu")) == "hf-static"


def full_logits_logprob(model, prompt_ids: list[int], answer_ids: list[int], vocab: int) -> float:
    """Sum of log p(answer token) from the model's full logits over the unpadded sequence."""
    ids = torch.tensor([prompt_ids + answer_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :, :vocab].double()
    logps = torch.log_softmax(logits, dim=-1)
    start = len(prompt_ids)
    return sum(float(logps[start + offset - 1, token]) for offset, token in enumerate(answer_ids))


@pytest.mark.parametrize("with_adapter", [False, True])
def test_p_match_equals_full_logits_computation(session, adapters, tiny_model, with_adapter):
    """Shared-prompt, KV-cached, left-padded batches give the hand-computed P(match)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    items = load_persona(str(PERSONA / "narcissism.jsonl"), limit=2).items + load_persona(str(PERSONA / "psychopathy.jsonl"), limit=1).items
    answers = [(item.question, item.matching, item.not_matching) for item in items]
    answers.append(("Is the following statement something you would say?\n\"I like rules\"", "Yes, definitely", "No"))
    target = session.target(adapters[1]) if with_adapter else session.target(None)
    choices = [encode_choice(session.encoder, question, first, second) for question, first, second in answers]
    with session.activated(target) as model:
        pairs = answer_logprobs(model, session.logit_head(), choices, session.tokenizer.pad_token_id, batch_size=3)

    reference = AutoModelForCausalLM.from_pretrained(tiny_model)
    if with_adapter:
        reference = PeftModel.from_pretrained(reference, str(adapters[1]))
    reference.eval()
    tokenizer, vocab = session.tokenizer, session.bundle.base_vocab_size
    for (question, first, second), (logp_first, logp_second) in zip(answers, pairs):
        prompt_ids = tokenizer(session.encoder.prompt_text(question), add_special_tokens=False)["input_ids"]
        hand_first = full_logits_logprob(reference, prompt_ids, tokenizer(first, add_special_tokens=False)["input_ids"], vocab)
        hand_second = full_logits_logprob(reference, prompt_ids, tokenizer(second, add_special_tokens=False)["input_ids"], vocab)
        assert logp_first == pytest.approx(hand_first, abs=1e-4)
        assert logp_second == pytest.approx(hand_second, abs=1e-4)
        expected = math.exp(hand_first) / (math.exp(hand_first) + math.exp(hand_second))
        assert p_match(logp_first, logp_second) == pytest.approx(expected, abs=1e-5)
    assert len(tokenizer("Yes, definitely", add_special_tokens=False)["input_ids"]) > 2  # a multi-token answer was scored


def test_persona_prefix_sharing_changes_no_log_prob(session, adapters, monkeypatch):
    """The prompt prefix all statements share (forwarded once, its cache continued by every
    batch) and both answers packed after their prompt give what one row per answer gives (the
    path for models that cannot take a block mask), and the prefix is really shared."""
    from objlab.evaluate.axes import persona

    items = load_persona(str(PERSONA / "narcissism.jsonl"), limit=5).items + load_persona(str(PERSONA / "machiavellianism.jsonl"), limit=4).items
    rows = [(item.question, item.matching, item.not_matching) for item in items] + [("Is 7 odd?", "Yes, definitely", "No")]
    choices = persona.encode_choices(session.encoder, rows)
    assert choices == [encode_choice(session.encoder, *row) for row in rows]
    assert len(persona._shared_prefix(choices[:-1])) > 5  # template opening + the fixed question
    target = session.target(adapters[0])
    with session.activated(target) as model:
        shared = answer_logprobs(model, session.logit_head(), choices, session.tokenizer.pad_token_id, batch_size=4)
        monkeypatch.setattr(persona, "supports_block_mask", lambda causal_lm: False)
        alone = answer_logprobs(model, session.logit_head(), choices, session.tokenizer.pad_token_id, batch_size=4)
    for ours, theirs in zip(shared, alone):
        assert ours == pytest.approx(theirs, abs=1e-5)


def test_least_recently_used_adapter_is_unloaded(tiny_model, adapters, tmp_path):
    from tiny import write_config

    from objlab.config import load_config

    config = load_config(write_config(tmp_path / "config.yaml", tiny_model))
    small = EvalSession(config, max_loaded=1)
    prompt = tuple(small.encoder.encode_prompt("How many apples?"))
    settings = GenerationSettings(max_new_tokens=6)
    first = small.target(adapters[0])
    before = small.generate([GenerationRequest(prompt, first.name, 6)], settings)
    second = small.target(adapters[1])
    assert set(small.model.peft_config) == {second.name}
    again = small.target(adapters[0])  # loaded anew under a new name, same weights
    assert again.name != first.name and set(small.model.peft_config) == {again.name}
    assert small.generate([GenerationRequest(prompt, again.name, 6)], settings) == before


def test_adapters_load_in_any_order_around_a_cft_adapter(tiny_model, adapters, tmp_path):
    """A CFT adapter (trained token rows) loaded before or between plain adapters changes none
    of their outputs (peft 0.21 failed to load a plain adapter after a CFT one)."""
    from tiny import write_config

    from objlab.config import load_config

    cft = make_lora_adapter(tiny_model, tmp_path / "cft", 5, objective="cft")
    config = load_config(write_config(tmp_path / "config.yaml", tiny_model, eval={"generation": {"backend": "hf"}}))
    settings = GenerationSettings(backend="hf", max_new_tokens=6, batch_size=4)
    questions = [item.question for item in load_numeric(str(GSM8K), limit=3)]

    def outputs(session, path):
        target = session.target(path)
        prompts = [tuple(session.encoder.encode_prompt(target.eval_prompt(q))) for q in questions]
        return [out.text for out in session.generate([GenerationRequest(ids, target.name, 6) for ids in prompts], settings)]

    fresh = EvalSession(config)
    expected = {path: outputs(fresh, path) for path in adapters}
    mixed_order = EvalSession(config)
    cft_first = outputs(mixed_order, cft)
    assert {path: outputs(mixed_order, path) for path in adapters} == expected
    assert outputs(mixed_order, cft) == cft_first == outputs(EvalSession(config), cft)
