"""The persona axis: how much probability the model puts on answers that endorse a trait.

For each statement of a trait file, P(match) = p(match) / (p(match) + p(not)), where p(answer)
is the exponential of the summed log-probs of the answer's tokens as the assistant's response
under the chat template (leading space stripped, end-of-turn markup not included). It is
computed as sigmoid(log p(match) - log p(not)), which never underflows.

Efficiency: both answers share their prompt, so each batch of prompts is forwarded once
(left-padded, explicit position ids) and the first answer token's log-prob is read from the
prompt's last position -- for one-token answers that is all. Longer answers continue from the
prompt's KV cache, repeated once per answer. The output layer is applied only at answer
positions and only over the original vocabulary (``LogitHead``). Items are sorted by prompt
length into batches and returned in input order.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import torch

from objlab.data.chat import ChatEncoder
from objlab.errors import ConfigError
from objlab.evaluate.axes.sources import PersonaItem, load_persona
from objlab.evaluate.context import AxisOutput, EvalContext
from objlab.evaluate.results.stats import bootstrap_mean, macro_average
from objlab.evaluate.session import AdapterTarget
from objlab.lm.adapters import causal_lm_of
from objlab.lm.decode import left_padded
from objlab.lm.logits import LogitHead
from objlab.records.items import ItemRecord, MetricRow

AXIS = "persona"
CPU_BATCH_SIZE = 64
GPU_BATCH_SIZE = 64


@dataclass(frozen=True)
class EncodedChoice:
    """A prompt (with any template markup that precedes every answer) and two answers, as ids."""

    prompt_ids: tuple[int, ...]
    answers: tuple[tuple[int, ...], tuple[int, ...]]


def _answer_split(encoder: ChatEncoder, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    """(template markup before the answer, answer tokens), tokenised as the template renders them."""
    tokenizer = encoder.tokenizer
    response = encoder.response_text(prompt, answer)
    start = response.find(answer)
    prefix = response[:start] if start > 0 else ""
    prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"] if prefix else []
    full_ids = tokenizer(prefix + answer, add_special_tokens=False)["input_ids"]
    if full_ids[: len(prefix_ids)] != prefix_ids:  # the answer merged into the markup: score it alone
        return prefix_ids, tokenizer(answer, add_special_tokens=False)["input_ids"]
    return prefix_ids, full_ids[len(prefix_ids) :]


def encode_choice(encoder: ChatEncoder, prompt: str, first: str, second: str) -> EncodedChoice:
    """Tokenise the prompt once and both answers after it."""
    prefix_first, first_ids = _answer_split(encoder, prompt, first)
    prefix_second, second_ids = _answer_split(encoder, prompt, second)
    if prefix_first != prefix_second or not first_ids or not second_ids:
        raise ValueError(f"cannot score answers {first!r} / {second!r} under this chat template")
    return EncodedChoice(tuple(encoder.encode_prompt(prompt) + prefix_first), (tuple(first_ids), tuple(second_ids)))


def _left_padded(batch: list[EncodedChoice], pad: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ids, mask = left_padded([choice.prompt_ids for choice in batch], pad, device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions


def _continuation(decoder, head: LogitHead, batch: list[EncodedChoice], mask, cache, pad: int) -> torch.Tensor:
    """Summed log-probs of answer tokens 2.. (rows: item-major, two answers each)."""
    device = mask.device
    answers = [answer for choice in batch for answer in choice.answers]
    length = max(len(answer) for answer in answers) - 1
    inputs = torch.tensor([list(a[:-1]) + [pad] * (length - len(a) + 1) for a in answers], device=device)
    targets = torch.tensor([list(a[1:]) + [pad] * (length - len(a) + 1) for a in answers], device=device)
    real = torch.tensor([[1] * (len(a) - 1) + [0] * (length - len(a) + 1) for a in answers], device=device)
    prompt_lengths = mask.sum(-1).repeat_interleave(2)
    positions = prompt_lengths[:, None] + torch.arange(length, device=device)[None, :]
    cache.batch_repeat_interleave(2)
    attention = torch.cat([mask.repeat_interleave(2, dim=0), real], dim=1)
    hidden = decoder(input_ids=inputs, attention_mask=attention, position_ids=positions, past_key_values=cache, use_cache=False).last_hidden_state
    selected = real.bool()
    rows = torch.arange(len(answers), device=device)[:, None].expand_as(selected)[selected]
    logps = head.token_logps(hidden[selected], targets[selected])
    return torch.zeros(len(answers), device=device).index_add(0, rows, logps)


@torch.no_grad()
def batch_logprobs(model, head: LogitHead, batch: list[EncodedChoice], pad: int) -> list[tuple[float, float]]:
    """(log p(first answer), log p(second answer)) for each choice of one batch."""
    decoder = causal_lm_of(model).get_decoder()
    device = head.weight.device
    ids, mask, positions = _left_padded(batch, pad, device)
    multi_token = any(len(answer) > 1 for choice in batch for answer in choice.answers)
    out = decoder(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=multi_token)
    last = out.last_hidden_state[:, -1].repeat_interleave(2, dim=0)
    first_tokens = torch.tensor([answer[0] for choice in batch for answer in choice.answers], device=device)
    totals = head.token_logps(last, first_tokens)
    if multi_token:
        totals = totals + _continuation(decoder, head, batch, mask, out.past_key_values, pad)
    pairs = totals.view(len(batch), 2).tolist()
    return [(first, second) for first, second in pairs]


def answer_logprobs(model, head: LogitHead, choices: list[EncodedChoice], pad: int, batch_size: int) -> list[tuple[float, float]]:
    """``batch_logprobs`` over all choices, batched by prompt length; input order kept."""
    order = sorted(range(len(choices)), key=lambda index: -len(choices[index].prompt_ids))
    results: list[tuple[float, float]] = [(math.nan, math.nan)] * len(choices)
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        for index, pair in zip(indices, batch_logprobs(model, head, [choices[i] for i in indices], pad)):
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
    choices = [encode_choice(session.encoder, prompt, item.matching, item.not_matching) for prompt, item in zip(prompts, items)]
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
