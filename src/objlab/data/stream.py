"""The shared task stream and the token-budget plan every objective follows.

Matched conditions (DESIGN.md): every objective consumes the identical ordered stream of task
examples. The order is a seeded permutation per epoch (epoch e uses permutation(seed, e)), so
the stream is infinite and position p is the same example for every objective, every resume
and every snapshot.

The budget counts task tokens: prompt + reference response under the chat template. A budget
B is reached by the first ``examples_for(B)`` examples of the stream: the smallest k whose
cumulative task tokens are >= B, so training never overshoots by more than one example.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from objlab.data.chat import ChatEncoder
from objlab.data.records import EncodedPair, Example, StreamItem


class TaskStream:
    """Position -> (example, encoding), in a seeded order that repeats per epoch, reshuffled."""

    def __init__(self, examples: list[Example], encoder: ChatEncoder, seed: int) -> None:
        if not examples:
            raise ValueError("the task stream needs at least one example")
        self.examples = examples
        self.encoder = encoder
        self.seed = seed
        self._orders: dict[int, np.ndarray] = {}
        self._encoded: dict[int, EncodedPair] = {}
        self._cumulative: list[int] = []  # cumulative task tokens after positions 0..len-1

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            self._orders[epoch] = np.random.default_rng([self.seed, epoch]).permutation(len(self.examples))
        return self._orders[epoch]

    def example_index(self, position: int) -> int:
        epoch, offset = divmod(position, len(self.examples))
        return int(self._order(epoch)[offset])

    def encoded(self, index: int) -> EncodedPair:
        if index not in self._encoded:
            example = self.examples[index]
            self._encoded[index] = self.encoder.encode_pair(example.prompt, example.response)
        return self._encoded[index]

    def item(self, position: int) -> StreamItem:
        index = self.example_index(position)
        return StreamItem(position=position, example=self.examples[index], encoded=self.encoded(index))

    def items(self, start: int, stop: int) -> list[StreamItem]:
        return [self.item(position) for position in range(start, stop)]

    def cumulative_tokens(self, count: int) -> int:
        """Task tokens in the first ``count`` positions."""
        self._extend_until(lambda: len(self._cumulative) >= count)
        return self._cumulative[count - 1] if count else 0

    def examples_for(self, budget: int) -> int:
        """The smallest number of stream examples whose task tokens reach ``budget``."""
        self._extend_until(lambda: self._cumulative and self._cumulative[-1] >= budget)
        return bisect.bisect_left(self._cumulative, budget) + 1

    def _extend_until(self, done) -> None:
        while not done():
            total = self._cumulative[-1] if self._cumulative else 0
            position = len(self._cumulative)
            self._cumulative.append(total + self.encoded(self.example_index(position)).length)


@dataclass(frozen=True)
class BudgetPlan:
    """Which stream positions each optimizer step consumes, and where each budget ends.

    Step s takes positions [s * batch_size, min((s + 1) * batch_size, end)) where ``end`` is
    the example count of the largest budget. A smaller budget B ends inside step
    ``cut_step(B)`` after ``examples[B]`` examples; a separate run to B takes that step cut to
    those examples, which is how snapshots are taken (see train.loop).
    """

    batch_size: int
    budgets: tuple[int, ...]
    examples: dict[int, int]  # budget -> number of stream examples that reach it
    tokens: dict[int, int]  # budget -> task tokens actually consumed (>= budget)

    @property
    def end(self) -> int:
        return self.examples[max(self.budgets)]

    def total_steps(self, budget: int | None = None) -> int:
        count = self.examples[budget if budget is not None else max(self.budgets)]
        return -(-count // self.batch_size)

    def step_positions(self, step: int) -> tuple[int, int]:
        start = step * self.batch_size
        return start, min(start + self.batch_size, self.end)

    def cuts_in_step(self, step: int) -> list[int]:
        """Budgets (other than the largest) whose last example falls inside this step, cut short."""
        start, stop = self.step_positions(step)
        return [b for b in self.budgets[:-1] if start < self.examples[b] < stop]

    def ends_at_step(self, step: int) -> list[int]:
        """Budgets whose last example is exactly the last example of this (uncut) step."""
        _, stop = self.step_positions(step)
        return [b for b in self.budgets if self.examples[b] == stop]


def plan_budgets(stream: TaskStream, batch_size: int, budgets: list[int]) -> BudgetPlan:
    ordered = tuple(sorted(set(budgets)))
    examples = {budget: stream.examples_for(budget) for budget in ordered}
    tokens = {budget: stream.cumulative_tokens(count) for budget, count in examples.items()}
    return BudgetPlan(batch_size=batch_size, budgets=ordered, examples=examples, tokens=tokens)
