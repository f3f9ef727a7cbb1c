"""Every attack a configuration can name, and the named sets that stand for several.

The catalog holds objlab's own attacks, the user's (``eval.jailbreak.attacks_dir``, which may
override objlab's) and, when ``eval.jailbreak.strongreject`` is given, StrongREJECT's
(``strongreject/<key>``). A named set (``attack_sets.yaml``; ``seed5`` is the reference
study's five) expands to StrongREJECT's keys when its files are given and to objlab's own
attacks otherwise; each member says which key stands for which attack, and why.

``select`` turns ``eval.jailbreak.attacks`` into attacks in the configured order (a set in
place of its name, duplicates once); an unknown name is an error that lists what is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from objlab.config.evaluation import JailbreakSettings
from objlab.errors import DataError
from objlab.evaluate.axes.attacks import Attack, builtin_attacks, user_attacks
from objlab.evaluate.axes.strongreject_attacks import PREFIX, strongreject_attacks


@dataclass(frozen=True)
class SetMember:
    """One attack of a named set: its role in the study, the StrongREJECT key and objlab's
    attack that stand for it, and why that key was chosen."""

    role: str
    strongreject: str
    objlab: str
    why: str


@dataclass(frozen=True)
class AttackSet:
    """A named set of attacks (``seed5``): its members, each with both of its stand-ins."""

    name: str
    description: str
    members: tuple[SetMember, ...]


@cache
def attack_sets() -> dict[str, AttackSet]:
    """The named sets shipped with objlab (``attack_sets.yaml``)."""
    data = yaml.safe_load(resources.files("objlab.evaluate.axes").joinpath("attack_sets.yaml").read_text())
    return {
        name: AttackSet(name, " ".join(entry["description"].split()),
                        tuple(SetMember(m["role"], m["strongreject"], m["objlab"], " ".join(m["why"].split())) for m in entry["members"]))
        for name, entry in data.items()
    }


@dataclass(frozen=True)
class Catalog:
    """The attacks available to one configuration (see the module docstring)."""

    attacks: dict[str, Attack]
    strongreject: str | None = None  # the user's StrongREJECT path, when given

    def expand(self, names: list[str]) -> list[str]:
        """Attack names with every set replaced by its members, each name once, order kept."""
        expanded: list[str] = []
        for name in names:
            if name in attack_sets():
                members = attack_sets()[name].members
                expanded += [PREFIX + m.strongreject if self.strongreject else m.objlab for m in members]
            else:
                expanded.append(name)
        return list(dict.fromkeys(expanded))

    def select(self, names: list[str]) -> list[Attack]:
        """The configured attacks in order; an unknown name is an error listing the known ones."""
        expanded = self.expand(names)
        unknown = [name for name in expanded if name not in self.attacks]
        if unknown:
            hint = ""
            if not self.strongreject and any(name.startswith(PREFIX) for name in unknown):
                hint = "; StrongREJECT's attacks need eval.jailbreak.strongreject (its wrapping_jailbreaks.json)"
            known = ", ".join(self.attacks)
            raise DataError(f"eval.jailbreak.attacks: unknown attack(s) {unknown} (known: {known}; sets: {', '.join(attack_sets())}){hint}")
        return [self.attacks[name] for name in expanded]

    def sets_of(self, attack: str) -> list[str]:
        """The named sets ``attack`` belongs to under this catalog."""
        return [name for name in attack_sets() if attack in self.expand([name])]


def build_catalog(attacks_dir: str | None = None, strongreject: str | None = None) -> Catalog:
    """objlab's attacks, the user's (overriding objlab's), and StrongREJECT's when given."""
    attacks = builtin_attacks()
    if attacks_dir:
        attacks.update(user_attacks(attacks_dir))
    if strongreject:
        attacks.update(strongreject_attacks(strongreject))
    clash = sorted(set(attacks) & set(attack_sets()))
    if clash:
        raise DataError(f"eval.jailbreak.attacks_dir: attack name(s) {clash} are names of attack sets; rename them")
    return Catalog(attacks, strongreject)


def catalog_for(settings: JailbreakSettings) -> Catalog:
    return build_catalog(settings.attacks_dir, settings.strongreject)


def configured_attacks(settings: JailbreakSettings) -> list[Attack]:
    """The attacks ``eval.jailbreak`` names, sets expanded, in order."""
    return catalog_for(settings).select(settings.attacks)


@dataclass(frozen=True)
class ListedAttack:
    """One line of ``objlab attacks``: an attack, whose text it is, its sets and what it does."""

    name: str
    origin: str
    source: str
    description: str
    sets: tuple[str, ...]


def listing(catalog: Catalog) -> list[ListedAttack]:
    """Every attack of ``catalog`` in catalog order (objlab's, the user's, StrongREJECT's)."""
    return [
        ListedAttack(attack.name, attack.origin, attack.source, attack.description, tuple(catalog.sets_of(attack.name)))
        for attack in catalog.attacks.values()
    ]
