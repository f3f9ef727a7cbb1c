"""The errors objlab raises for bad input.

They are raised at the edge, where config and data enter, and always name the file, line or
field at fault and what was expected, so the CLI can print them as they are (no traceback).
"""

from __future__ import annotations


class ObjlabError(Exception):
    """Base class: an error whose message is meant for the user, printed without a traceback."""


class ConfigError(ObjlabError):
    """The experiment config is missing a field, has a wrong value, or names something unknown."""


class DataError(ObjlabError):
    """An input data file or dataset row is malformed. The message names the file and line."""


class StateError(ObjlabError):
    """A run directory is in a state that the requested action cannot continue from."""


class TrainingError(ObjlabError):
    """Training cannot go on: the loss or the gradient norm stopped being a finite number.

    Raised before the optimizer applies the step, so no checkpoint or adapter ever holds
    parameters updated from a non-finite value; the message names the step and objective."""


class StoreBusy(StateError):
    """The results store stayed locked by another process for longer than the wait allowed."""
