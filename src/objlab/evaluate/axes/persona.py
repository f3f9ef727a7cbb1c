"""The persona axis: how much probability the model puts on answers that endorse a trait.

For each statement of a trait file, P(match) = p(match) / (p(match) + p(not)), where p(answer)
is the exponential of the summed log-probs of the answer's tokens as the assistant's response
under the chat template (leading space stripped, end-of-turn markup not included). It is
computed as sigmoid(log p(match) - log p(not)), which never underflows.

Efficiency: the tokens every prompt begins with (the chat template's opening and the
statements' fixed question, about 40% of a prompt) are forwarded once per call and their KV
cache continued by every batch; each statement's own prompt tokens and both answers then share
one row (``lm.packing``: the prompt once, each answer as its own block), so one decoder pass per
batch scores both answers, however many tokens they have; a row holds as many statements as fit
in ``ROW_TOKENS`` (each attending only to itself and the cached prefix) rather than one statement
padded to the batch's longest, and an answer's last token (which predicts nothing scored) is not
forwarded. The output layer is applied only at
answer positions and only over the original vocabulary (``LogitHead``). Models whose attention
cannot take a block mask (``lm.masks.supports_block_mask``) get one row per answer instead.
Items are sorted by prompt length into batches and returned in input order.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import torch

from objlab.data.chat import ChatEncoder
from objlab.data.records import EncodedPair
from objlab.errors import ConfigError
from objlab.evaluate.axes.sources import PersonaItem, load_persona
from objlab.evaluate.context import AxisOutput, EvalContext
from objlab.evaluate.results.stats import bootstrap_mean, macro_average
from objlab.evaluate.session import AdapterTarget
from objlab.lm.adapters import causal_lm_of
from objlab.lm.kv_cache import returned_cache
from objlab.lm.logits import LogitHead
from objlab.lm.masks import supports_block_mask
from objlab.lm.packing import common_prefix, pack_rows, packed_hidden
from objlab.records.items import ItemRecord, MetricRow

AXIS = "persona"
CPU_BATCH_SIZE = 64
GPU_BATCH_SIZE = 64
# Packed rows are filled with statements up to this many tokens (or the longest statement's):
# statements vary in length, and one row each padded a third of a batch's tokens on CPU.
ROW_TOKENS = 64


@dataclass(frozen=True)
class EncodedChoice:
    """A prompt (with any template markup that precedes every answer) and two answers, as ids."""

    prompt_ids: tuple[int, ...]
    answers: tuple[tuple[int, ...], tuple[int, ...]]


def _answer_texts(encoder: ChatEncoder, prompt: str, answer: str) -> tuple[str, str]:
    """(template markup before the answer, the answer as the template renders it after it)."""
    response = encoder.response_text(prompt, answer)
    start = response.find(answer)
    return (response[:start] if start > 0 else ""), answer


def _answer_split(prefix_ids: list[int], full_ids: list[int], alone_ids: list[int]) -> tuple[list[int], list[int]]:
    """(markup tokens, answer tokens) from the tokenised markup, markup + answer, and answer."""
    if full_ids[: len(prefix_ids)] != prefix_ids:  # the answer merged into the markup: score it alone
        return prefix_ids, alone_ids
    return prefix_ids, full_ids[len(prefix_ids) :]


def encode_choices(encoder: ChatEncoder, rows: list[tuple[str, str, str]]) -> list[EncodedChoice]:
    """``encode_choice`` for many (prompt, first, second) rows with one tokenizer call for all
    their texts: per-text calls spent more time in the tokenizer's Python wrapper than in
    tokenising, a fifth of persona scoring's time on CPU."""
    texts: list[str] = []
    for prompt, first, second in rows:
        texts.append(encoder.prompt_text(prompt))
        for answer in (first, second):
            prefix, answer = _answer_texts(encoder, prompt, answer)
            texts += [prefix, prefix + answer, answer]
    ids = iter(encoder.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else [])
    choices = []
    for prompt, first, second in rows:
        prompt_ids = next(ids)
        (prefix_first, first_ids), (prefix_second, second_ids) = (_answer_split(next(ids), next(ids), next(ids)) for _ in range(2))
        if prefix_first != prefix_second or not first_ids or not second_ids:
            raise ValueError(f"cannot score answers {first!r} / {second!r} under this chat template")
        choices.append(EncodedChoice(tuple(prompt_ids + prefix_first), (tuple(first_ids), tuple(second_ids))))
    return choices


def encode_choice(encoder: ChatEncoder, prompt: str, first: str, second: str) -> EncodedChoice:
    """Tokenise the prompt once and both answers after it, as the template renders them (any
    markup that precedes the answer belongs to the prompt)."""
    return encode_choices(encoder, [(prompt, first, second)])[0]


def _shared_prefix(choices: list[EncodedChoice]) -> tuple[int, ...]:
    """The prompt tokens every choice begins with (chat template opening, the statements'
    fixed question), leaving each prompt at least its last token of its own."""
    prompts = [choice.prompt_ids for choice in choices]
    length = min(common_prefix(prompts), min(map(len, prompts)) - 1)
    return prompts[0][:length]


def _rows(batch: list[EncodedChoice], skip: int, share: bool) -> tuple[list[list[EncodedPair]], dict[tuple[int, int], int]]:
    """Each choice as its two (prompt after ``skip`` tokens, answer) sequences: packed in one
    row when ``share``, else one row each; sequence 2i + k is answer k of choice i."""
    pairs = [[EncodedPair(choice.prompt_ids[skip:], answer) for answer in choice.answers] for choice in batch]
    if share:
        return pairs, {(item, k): 2 * item + k for item in range(len(batch)) for k in range(2)}
    return [[pair] for both in pairs for pair in both], {(row, 0): row for row in range(2 * len(batch))}


def batch_logprobs(model, head: LogitHead, batch: list[EncodedChoice], pad: int, prefix: tuple[int, ...] = (), prefix_cache=None) -> list[tuple[float, float]]:
    """(log p(first answer), log p(second answer)) for each choice of one batch, in one decoder
    pass. Where the model takes a block mask, a choice's prompt and both answers share a row
    (the prompt once) and every row continues ``prefix_cache``, the KV cache of ``prefix``,
    the tokens all prompts begin with; otherwise each answer gets its own row."""
    causal_lm = causal_lm_of(model)
    share = prefix_cache is not None or supports_block_mask(causal_lm)
    items, sequence_of = _rows(batch, len(prefix), share)
    packed = pack_rows(items, sequence_of, pad, width=ROW_TOKENS if share else None, keep_last=False)
    device = head.weight.device
    hidden = packed_hidden(causal_lm, packed, device, prefix_cache)
    logps = head.token_logps(hidden, packed.head_targets.to(device))[packed.token_slots.to(device)]
    totals = torch.zeros(2 * len(batch), device=device).index_add(0, packed.token_sequences.to(device), logps)
    return [(first, second) for first, second in totals.view(len(batch), 2).tolist()]


@torch.no_grad()
def answer_logprobs(model, head: LogitHead, choices: list[EncodedChoice], pad: int, batch_size: int) -> list[tuple[float, float]]:
    """``batch_logprobs`` over all choices, batched by prompt length; input order kept. The
    prefix all prompts share is forwarded once, its cache reused by every batch."""
    if not choices:
        return []
    causal_lm = causal_lm_of(model)
    prefix, prefix_cache = (), None
    if supports_block_mask(causal_lm) and (prefix := _shared_prefix(choices)):
        ids = torch.tensor([prefix], device=head.weight.device)
        prefix_cache = returned_cache(causal_lm.get_decoder()(input_ids=ids, use_cache=True))
    order = sorted(range(len(choices)), key=lambda index: -len(choices[index].prompt_ids))
    results: list[tuple[float, float]] = [(math.nan, math.nan)] * len(choices)
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        pairs = batch_logprobs(model, head, [choices[i] for i in indices], pad, prefix, prefix_cache)
        for index, pair in zip(indices, pairs):
            results[index] = pair
    return results


def p_match(logp_match: float, logp_not: float) -> float:
    """p(match) / (p(match) + p(not)) from the two log-probs, without underflow."""
    return 1.0 / (1.0 + math.exp(min(700.0, logp_not - logp_match)))


def _batch_size(ctx: EvalContext) -> int:
    configured = ctx.settings.generation.batch_size
    if configured != "auto":
        return configured
    return GPU_BATCH_SIZE if ctx.session.device.type == "cuda" else CPU_BATCH_SIZE


def trait_output(ctx: EvalContext, target: AdapterTarget, trait: str, items: list[PersonaItem]) -> AxisOutput:
    """One trait for one target: P(match) per item and its mean with a bootstrap interval."""
    session = ctx.session
    prompts = [target.eval_prompt(item.question) for item in items]
    choices = encode_choices(session.encoder, [(prompt, item.matching, item.not_matching) for prompt, item in zip(prompts, items)])
    with session.activated(target) as model:
        pairs = answer_logprobs(model, session.logit_head(), choices, session.tokenizer.pad_token_id, _batch_size(ctx))
    output = AxisOutput()
    for item, prompt, (logp_match, logp_not) in zip(items, prompts, pairs):
        logps = {"logp_match": logp_match, "logp_not_match": logp_not}
        extra = {**logps, "answer_matching": item.matching, "answer_not_matching": item.not_matching}
        output.items.append(ItemRecord(AXIS, trait, item.item_id, prompt, json.dumps(logps), p_match(logp_match, logp_not),
                                       json.dumps(logps), "logprob", extra))
    values = [record.score for record in output.items]
    output.metrics.append(MetricRow.from_estimate(AXIS, "p_match", trait, bootstrap_mean(values)))
    return output


def run_persona(ctx: EvalContext, targets: list[AdapterTarget]) -> dict[str, AxisOutput]:
    """Every configured trait for every target, then the macro-average over traits."""
    files = ctx.settings.persona.trait_files()
    if not files:
        raise ConfigError("eval.persona: name the trait files with 'traits' (trait: file) or a 'dir' holding the default traits")
    traits = {trait: load_persona(path, ctx.settings.persona.limit, seed=ctx.settings.subset_seed) for trait, path in files.items()}
    ctx.subsets.update({f"persona:{trait}": items.info for trait, items in traits.items()})
    results = {target.name: AxisOutput() for target in targets}
    line = ctx.board.line("persona", len(traits) * len(targets))
    for target in targets:
        for trait, items in traits.items():
            output = trait_output(ctx, target, trait, items)
            results[target.name].metrics += output.metrics
            results[target.name].items += output.items
            line.advance(1, info=trait)
        by_trait = {trait: [r.score for r in results[target.name].items if r.group == trait] for trait in traits}
        results[target.name].metrics.append(MetricRow.from_estimate(AXIS, "p_match", "", macro_average(by_trait)))
    line.close()
    return results
