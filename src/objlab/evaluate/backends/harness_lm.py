"""lm-evaluation-harness's ``HFLM`` on the model an evaluation session already holds.

lm-eval evaluates a model instance as readily as a hub id (``HFLM(pretrained=model)``), so the
bridge hands it the session's model with the target's adapter active (``EvalSession.activated``):
the base weights stay loaded once and no merged copy is made. ``SessionLM`` differs from a plain
``HFLM`` in three ways, each so that lm-eval's figures are measured as objlab's other axes are:

- the chat template renders the prompt as the adapter's objective presents it: CFT's evaluation
  control token goes before the final user turn (few-shot turns stay as they are, as on the
  capability axis);
- log-probs and generated tokens range over the model's original vocabulary: control tokens
  added for CFT (rows appended to the output layer) are never scored nor generated, as
  ``LogitHead.vocab_limit`` and the generation backends' ``VocabLimit`` do elsewhere;
- progress goes to objlab's board, not to lm-eval's progress bars.

Everything else (tokenisation, batching, truncation, stop sequences, filters, scoring) is
lm-eval's own, so a figure equals ``simple_evaluate`` on the merged model (tested). This module
imports lm-eval: import it only after ``axes.harness.require_lm_eval``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from lm_eval.models.huggingface import HFLM

from objlab.lm.generation import VocabLimit

Present = Callable[[str], str]
Progress = Callable[[int], None]


def presented(chat_history: list[dict[str, str]], present: Present) -> list[dict[str, str]]:
    """The chat with ``present`` applied to the content of its last user turn (a copy)."""
    users = [index for index, message in enumerate(chat_history) if message.get("role") == "user"]
    if not users:
        return chat_history
    messages = [dict(message) for message in chat_history]
    messages[users[-1]]["content"] = present(messages[users[-1]]["content"])
    return messages


class SessionLM(HFLM):
    """``HFLM`` over an already loaded (peft) model; see the module docstring.

    ``vocab_limit`` is the original vocabulary size when tokens were added to the model (None
    otherwise); ``present`` maps a user prompt to what the adapter's objective evaluates.
    """

    def __init__(self, model, tokenizer, *, batch_size: int | str, vocab_limit: int | None, present: Present,
                 progress: Progress | None = None) -> None:
        super().__init__(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        self._vocab_limit = vocab_limit
        self._present = present
        self._progress = progress or (lambda count: None)

    # -- prompts ---------------------------------------------------------------------------------
    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return super().apply_chat_template(presented(chat_history, self._present), add_generation_prompt)

    # -- the output layer over the original vocabulary ------------------------------------------
    def _model_call(self, inps: torch.Tensor, attn_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        logits = super()._model_call(inps, attn_mask, labels)
        return logits if self._vocab_limit is None else logits[..., : self._vocab_limit]

    def _model_generate(self, context, max_length: int, stop: list[str], **generation_kwargs) -> torch.Tensor:
        if self._vocab_limit is not None:
            processors = list(generation_kwargs.pop("logits_processor", None) or [])
            generation_kwargs["logits_processor"] = [*processors, VocabLimit(self._vocab_limit)]
        return super()._model_generate(context, max_length, stop, **generation_kwargs)

    # -- progress on objlab's board instead of lm-eval's bars -----------------------------------
    def loglikelihood(self, requests, disable_tqdm: bool = False):
        results = super().loglikelihood(requests, disable_tqdm=True)
        self._progress(len(requests))
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        results = super().loglikelihood_rolling(requests, disable_tqdm=True)
        self._progress(len(requests))
        return results

    def generate_until(self, requests, disable_tqdm: bool = False):
        results = super().generate_until(requests, disable_tqdm=True)
        self._progress(len(requests))
        return results
