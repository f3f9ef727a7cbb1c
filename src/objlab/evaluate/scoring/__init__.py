"""Scoring: judge models and their chat clients, rubrics, the offline refusal classifier, answer extraction, the verdict cache and scorer agreement."""
