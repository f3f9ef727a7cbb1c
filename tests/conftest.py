import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny import GSM8K, PERSONA, build_tiny_model, write_config  # noqa: E402


def pytest_sessionstart(session):
    if not GSM8K.is_file() or not PERSONA.is_dir():
        raise pytest.UsageError(
            f"shared test data not found at {GSM8K.parent.parent}; set OBJLAB_SHARED_DATA to the shared/data directory"
        )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer Llama (d=32) with a byte-level BPE tokenizer and chat template."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_tied_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-tied"), tie=True)


@pytest.fixture
def make_config(tmp_path, tiny_model):
    """Write a small experiment config for the tiny model and load it."""
    from objlab.config import load_config

    def make(**overrides):
        return load_config(write_config(tmp_path / "config.yaml", tiny_model, **overrides))

    return make
