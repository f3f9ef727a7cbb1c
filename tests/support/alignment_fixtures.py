"""Alignment signals for the tests of ``aware`` (imported by name: python:alignment_fixtures:...)."""

from __future__ import annotations


def graded(prompts, responses):
    """Mixed, graded scores that depend only on the response: the gate takes values in (0, 1)."""
    return [(len(response) % 5) / 4 for response in responses]


def never_aligned(prompts, responses):
    return [0.0 for _ in responses]


def always_aligned(prompts, responses):
    return [1.0 for _ in responses]


def one_half_one_zero(prompts, responses):
    """Per pair of samples: 0.5 and 0.0 (mean 0.25, std 0.25: the gate reaches 1, no abstention)."""
    return [0.5 if index % 2 == 0 else 0.0 for index in range(len(responses))]
