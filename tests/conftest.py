import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))  # tiny, factories, fixtures shared by the tests

from fake_judge import FakeOpenAI  # noqa: E402
from tiny import build_tiny_model, write_config  # noqa: E402


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


@pytest.fixture(scope="session")
def organism(tmp_path_factory):
    """The test-size demo organism, built once per session (minutes; the slow tests share it).
    Laid out as $OBJLAB_CACHE/organism so CLI tests find this build in their cache."""
    from objlab.organism.build import build_organism

    return build_organism("test", cache_dir=tmp_path_factory.mktemp("objlab-cache") / "organism")


@pytest.fixture
def fake_server():
    """A fake OpenAI-compatible judge and translator endpoint (``support/fake_judge.py``)."""
    server = FakeOpenAI()
    yield server
    server.close()
