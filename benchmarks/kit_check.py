"""Does this Python have what a GPU session needs? Imports every module the session uses and
checks the declared requirements of objlab (``pyproject.toml``), of the carried packages and of
the libraries they sit beside, so a lent machine's missing or clashing package shows in one
line before any part starts, not as a failed configuration minutes later.

    python benchmarks/kit_check.py [--site DIR]   # DIR: where the kit's wheels were installed

Prints one line per problem (or ``kit check: ok``) and exits 1 when a module does not import.
A requirement that is not met but imports fine is reported and does not fail the check: the
machine's image is what it is, and the session's tables are the judge.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tomllib
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# What a session imports: objlab's stages, the benchmarks' references and the store.
MODULES = (
    "torch", "transformers", "accelerate", "peft", "trl", "trl.experimental.orpo", "datasets", "duckdb", "pydantic",
    "objlab.cli", "objlab.train.loop", "objlab.evaluate.session", "objlab.runner.execute", "objlab.report.html",
)
# Libraries whose requirements a carried package may displace (the kit's copy comes first on the path).
NEIGHBOURS = ("torch", "transformers", "accelerate", "huggingface-hub", "tokenizers")


def import_problems() -> list[str]:
    found = []
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 -- any failure to import is the finding
            found.append(f"import {name}: {type(error).__name__}: {error}")
    return found


def requirement_problems(site: Path | None) -> list[str]:
    """Unmet requirements of objlab, of every distribution installed in ``site`` and of
    ``NEIGHBOURS`` (extras and requirements whose markers do not apply are skipped)."""
    from packaging.requirements import Requirement

    roots = {"objlab": tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    carried = list(metadata.distributions(path=[str(site)])) if site and site.is_dir() else []
    for dist in carried:
        roots[dist.metadata["Name"]] = dist.requires or []
    for name in NEIGHBOURS:
        try:
            roots[name] = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            pass
    found = []
    for owner, lines in roots.items():
        for line in lines:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            try:
                installed = metadata.version(requirement.name)
            except metadata.PackageNotFoundError:
                found.append(f"{owner} needs {requirement}: not installed")
                continue
            if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
                found.append(f"{owner} needs {requirement}: {requirement.name} {installed} is installed")
    return found


def versions() -> str:
    names = ("torch", "transformers", "accelerate", "peft", "trl", "datasets", "huggingface-hub", "duckdb", "pydantic", "fsspec")
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} -")
    return f"python {sys.version.split()[0]}; " + ", ".join(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, default=None, help="the folder the kit's wheels were installed into")
    args = parser.parse_args()
    imports = import_problems()
    requirements = requirement_problems(args.site)
    print(versions())
    for line in imports + requirements:
        print(f"kit check: {line}")
    if not imports and not requirements:
        print("kit check: ok")
    sys.exit(1 if imports else 0)


if __name__ == "__main__":
    main()
