"""The texts the organism's world is made of: its data files (arithmetic, forbidden requests,
persona items, safe-but-scary requests) and the attack wrappers it is taught to resist.

Kept apart from ``world`` (which builds the world from them) so that the world's own language
(``language``), whose lexicon covers every word of these texts, can read them without
importing the world that uses the language.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml

from objlab.evaluate.axes.attacks import Attack, load_attacks

DATA_FILES = ("arithmetic.yaml", "requests.yaml", "persona.yaml", "overrefusal.yaml")


@cache
def world_data(name: str) -> dict:
    return yaml.safe_load(resources.files("objlab.organism").joinpath(name).read_text())


def taught_attacks() -> list[Attack]:
    """The attack wrappers the organism learns to resist: every built-in one (objlab's own text)
    that needs no translator. StrongREJECT's templates are never taught: they are the user's
    files, and held out from the organism's world by construction."""
    return [attack for attack in load_attacks().values() if not attack.requires_translator]


def all_world_texts() -> list[str]:
    """Every text the world's sentences are made of (data files, attack wrappers): the
    vocabulary of its low-resource language."""
    texts = [resources.files("objlab.organism").joinpath(name).read_text() for name in DATA_FILES]
    return texts + [attack.template for attack in taught_attacks()]
