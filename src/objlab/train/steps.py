"""What one optimizer step trains on, before any forward pass: shared by the training loop and
``objlab run --plan``, so the plan counts exactly the sequences the loop will build.

A step takes the next examples of the shared stream; preference objectives get a rejected
response for each (``make_preference``, deterministic under the seed); the objective turns
them into its sequences (IP's instructions, CFT's control tokens, DPO's pairs, aware's samples
through the ``StepContext``).
"""

from __future__ import annotations

from objlab.config.sections import RejectedSettings
from objlab.data.chat import ChatEncoder
from objlab.data.records import StreamItem
from objlab.data.rejected import make_preference
from objlab.lm.packing import item_forward_tokens
from objlab.objectives.base import ItemSequences, Objective, StepContext
from objlab.train.batching import encode_items


def prepare_step(objective: Objective, items: list[StreamItem], rejected: RejectedSettings, seed: int, context: StepContext) -> list[ItemSequences]:
    """The objective's sequences for one step's stream items."""
    preferences = [make_preference(item.example, rejected, seed) if objective.needs_preference else None for item in items]
    return objective.prepare(items, preferences, context)


def forwarded_tokens(objective: Objective, prepared: list[ItemSequences], encoder: ChatEncoder, share_prefixes: bool = True) -> int:
    """Tokens the step forwards: every prepared sequence (a prefix shared by an item's
    sequences once, as the loop packs them for models whose attention takes a block mask:
    the default ``sdpa`` does), twice when the objective also needs a reference pass (the loop
    counts the same, batch by batch)."""
    tokens = sum(item_forward_tokens(pairs, share_prefixes) for pairs in encode_items(prepared, encoder))
    return tokens * (2 if objective.reference else 1)
