"""Building the model organism: a tiny Llama trained from scratch on the synthetic world.

``objlab demo`` needs a chat model that knows arithmetic, refuses forbidden requests (also
under jailbreak wrappers) and answers persona questions without Dark Triad traits, so that
fine-tuning has something to improve and something to erode. No hub is reachable, so objlab
trains one on CPU in minutes ("alignment pretraining"): a byte-level BPE tokenizer and a small
``LlamaForCausalLM``, with a plain PyTorch loop (AdamW, loss on assistant tokens only), saved in
standard Hugging Face format so the rest of objlab loads it like any other model.

A build is a pure function of its ``Recipe`` (world, model shape, training, seed), cached under
the recipe's hash: an unchanged recipe loads instantly, a changed one rebuilds. The build
writes into a temporary sibling directory and renames it into place at the end, so a killed
build never leaves a half-written organism behind.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch

from objlab.atomic import build_directory
from objlab.organism import world as world_module
from objlab.organism.world import World, WorldSpec, make_world, write_study_files
from objlab.progress import Board, board_or_quiet

BUILD_VERSION = 3  # bump when the training code changes what a recipe produces
RECIPE_FILE = "recipe.json"
Size = Literal["demo", "test"]


@dataclass(frozen=True)
class ModelSpec:
    """Shape of the tiny Llama and its tokenizer."""

    layers: int = 4
    hidden: int = 128
    heads: int = 4
    kv_heads: int = 4
    intermediate: int = 384
    vocab_size: int = 1024
    tie_embeddings: bool = True
    max_positions: int = 512


@dataclass(frozen=True)
class TrainSpec:
    """The two training stages. Pretraining: AdamW, linear warm-up then cosine decay to
    ``min_lr_ratio``. Alignment: a short run on the alignment transcripts at a constant
    ``align_learning_rate`` (after ``warmup_steps``), with a fresh optimizer, as a chat model's
    safety tuning follows its pretraining."""

    align_steps: int = 150
    align_learning_rate: float = 1e-3
    steps: int = 800
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_steps: int = 30
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_length: int = 256


@dataclass(frozen=True)
class Recipe:
    """Everything a build depends on; its hash names the cache entry."""

    size: str
    seed: int
    world: WorldSpec = field(default_factory=WorldSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainSpec = field(default_factory=TrainSpec)

    def describe(self) -> dict:
        return {
            **asdict(self),
            "world_version": world_module.WORLD_VERSION,
            "world_content": world_module.content_digest(),
            "build_version": BUILD_VERSION,
        }

    @property
    def hash(self) -> str:
        text = json.dumps(self.describe(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


SIZES: dict[str, Recipe] = {
    "demo": Recipe("demo", 0),
    # The same world, a smaller vocabulary and a shorter pretraining: what the tests build.
    "test": Recipe("test", 0, model=ModelSpec(vocab_size=768), train=TrainSpec(steps=1000)),
}


def recipe_for(size: Size, seed: int = 0) -> Recipe:
    if size not in SIZES:
        raise ValueError(f"unknown organism size {size!r} (known: {', '.join(SIZES)})")
    return replace(SIZES[size], seed=seed)


@dataclass(frozen=True)
class Organism:
    """A built organism: the model directory and the study's files, all under ``root``."""

    root: Path
    model_dir: Path
    train_path: Path
    heldout_arithmetic_path: Path
    probe_arithmetic_path: Path
    forbidden_path: Path
    persona_dir: Path
    overrefusal_path: Path  # held-out safe-but-scary prompts and unsafe contrasts, XSTest's format
    recipe_hash: str
    size: str

    @classmethod
    def at(cls, root: Path, recipe: Recipe) -> Organism:
        return cls(
            root=root,
            model_dir=root / "model",
            train_path=root / "train.jsonl",
            heldout_arithmetic_path=root / "heldout_arithmetic.jsonl",
            probe_arithmetic_path=root / "probe_arithmetic.jsonl",
            forbidden_path=root / "forbidden.csv",
            persona_dir=root / "persona",
            overrefusal_path=root / "overrefusal.csv",
            recipe_hash=recipe.hash,
            size=recipe.size,
        )


def default_cache_dir() -> Path:
    """``$OBJLAB_CACHE/organism``, else ``~/.cache/objlab/organism``."""
    base = os.environ.get("OBJLAB_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "objlab") / "organism"


def is_built(root: Path, recipe: Recipe) -> bool:
    marker = root / RECIPE_FILE
    return marker.is_file() and json.loads(marker.read_text()).get("hash") == recipe.hash


def build_organism(size: Size = "demo", cache_dir: Path | None = None, seed: int = 0, board: Board | None = None) -> Organism:
    """The organism of ``size`` and ``seed``: from the cache when built before, else built now."""
    recipe = recipe_for(size, seed)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    def build(partial: Path) -> None:
        with board_or_quiet(board) as active:
            build_into(partial, recipe, active)

    target = cache_dir / recipe.hash
    if not is_built(target, recipe):
        with one_build_at_a_time(board):  # then built by whoever held the lock, or by us now
            build_directory(target, build, lambda path: is_built(path, recipe))
    return Organism.at(target, recipe)


@contextmanager
def one_build_at_a_time(board: Board | None):
    """Hold the machine-wide organism build lock (a file lock in the temporary directory).

    A build pins its thread count and keeps every core it is given busy; two builds at once
    on a small machine each run many times slower than one after the other (threads that
    spin-wait for each other), so a second build waits, and finds the organism cached if it
    was the same recipe."""
    import fcntl
    import tempfile

    path = Path(os.environ.get("OBJLAB_BUILD_LOCK", Path(tempfile.gettempdir()) / "objlab-organism-build.lock"))
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if board is not None:
                board.log(f"another organism build is running on this machine; waiting for it ({path})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_into(root: Path, recipe: Recipe, board: Board) -> None:
    """Generate the world, train tokenizer and model, write everything under ``root``."""
    started = time.perf_counter()
    line = board.line(f"organism {recipe.size}: world", 3)
    world = make_world(recipe.world, recipe.seed)
    line.advance(1, info="study files")
    write_study_files(world, root)
    line.advance(1, info="tokenizer")
    tokenizer = train_organism_tokenizer(world, recipe.model.vocab_size)
    line.advance(1, info=f"{len(world.pretraining):,} + {len(world.alignment):,} transcripts")
    line.close()
    with pinned_threads():
        model, log = pretrain(world, tokenizer, recipe, board)
    model_dir = root / "model"
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # objlab shows its own progress
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    summary = {
        "hash": recipe.hash,
        "recipe": recipe.describe(),
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
        "final_loss": log[-1]["loss"],
        "build_seconds": round(time.perf_counter() - started, 1),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    (root / "pretrain_log.jsonl").write_text("".join(json.dumps(row) + "\n" for row in log))
    (root / RECIPE_FILE).write_text(json.dumps(summary, indent=2))  # written last: marks the build complete


def train_organism_tokenizer(world: World, vocab_size: int):
    from objlab.organism.tokenizer import train_tokenizer

    transcripts = world.pretraining + world.alignment
    return train_tokenizer((t.prompt + "\n" + t.response for t in transcripts), vocab_size=vocab_size)


@contextmanager
def pinned_threads(count: int = 2):
    """A fixed CPU thread count for the build (tiny matmuls gain nothing from more, and a fixed
    count keeps the weights identical from run to run on the same machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, min(count, os.cpu_count() or 1)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# -- pretraining -----------------------------------------------------------------------------
def new_model(spec: ModelSpec, tokenizer, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        max_position_embeddings=spec.max_positions,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=spec.tie_embeddings,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def encode_transcripts(transcripts: list, tokenizer, max_length: int) -> list[tuple[list[int], int]]:
    """Each transcript as (token ids, number of context tokens: the prompt and the response's
    given start), rendered by the chat template exactly as training and evaluation render it."""
    from objlab.data.chat import ChatEncoder

    encoder = ChatEncoder(tokenizer, max_length)
    encoded = []
    for transcript in transcripts:
        pair = encoder.encode_pair(transcript.prompt, transcript.response)
        context = len(pair.prompt_ids) + given_tokens(tokenizer, pair.response_ids, transcript.given)
        encoded.append((list(pair.prompt_ids) + list(pair.response_ids), context))
    return encoded


def given_tokens(tokenizer, response_ids, given: str) -> int:
    """How many response tokens spell ``given`` (the start of the response that is context only)."""
    if not given:
        return 0
    for count in range(1, len(response_ids) + 1):
        text = tokenizer.decode(list(response_ids[:count]), skip_special_tokens=True)
        if text.strip() == given:
            return count
        if len(text.strip()) > len(given):
            break
    raise ValueError(f"the response does not start with its given part {given!r} on a token boundary")


def batch_order(lengths: list[int], batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """``steps`` batches of transcript indices: epoch after epoch of seeded shuffles, grouped by
    similar length within windows of 16 batches (less padding, still well mixed)."""
    generator = torch.Generator().manual_seed(seed)
    batches: list[list[int]] = []
    window = batch_size * 16
    while len(batches) < steps:
        order = torch.randperm(len(lengths), generator=generator).tolist()
        epoch = []
        for start in range(0, len(order) - batch_size + 1, window):
            chunk = sorted(order[start : start + window], key=lambda index: lengths[index])
            epoch += [chunk[i : i + batch_size] for i in range(0, len(chunk) - batch_size + 1, batch_size)]
        shuffled = torch.randperm(len(epoch), generator=generator).tolist()
        batches += [epoch[index] for index in shuffled]
    return batches[:steps]


def collate(encoded: list[tuple[list[int], int]], indices: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ids; labels only on the assistant turn (prompt and padding are -100)."""
    width = max(len(encoded[index][0]) for index in indices)
    input_ids = torch.full((len(indices), width), pad_id)
    labels = torch.full((len(indices), width), -100)
    attention = torch.zeros((len(indices), width), dtype=torch.long)
    for row, index in enumerate(indices):
        ids, prompt_length = encoded[index]
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, prompt_length : len(ids)] = torch.tensor(ids[prompt_length:])
        attention[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def learning_rate(step: int, spec: TrainSpec) -> float:
    if step < spec.warmup_steps:
        return spec.learning_rate * (step + 1) / spec.warmup_steps
    progress = (step - spec.warmup_steps) / max(1, spec.steps - spec.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return spec.learning_rate * (spec.min_lr_ratio + (1 - spec.min_lr_ratio) * cosine)


def align_learning_rate(step: int, spec: TrainSpec) -> float:
    return spec.align_learning_rate * min(1.0, (step + 1) / spec.warmup_steps)


def train_stage(model, transcripts, tokenizer, recipe: Recipe, board: Board, stage: str, steps: int, rate) -> list[dict]:
    """One stage of the organism's training (loss on assistant tokens only); returns its log."""
    spec = recipe.train
    encoded = encode_transcripts(transcripts, tokenizer, spec.max_length)
    optimizer = torch.optim.AdamW(model.parameters(), lr=rate(0), weight_decay=spec.weight_decay, betas=(0.9, 0.98))
    batches = batch_order([len(ids) for ids, _ in encoded], spec.batch_size, steps, recipe.seed + (stage == "align"))
    line = board.line(f"organism {recipe.size}: {stage}", steps)
    log = []
    model.train()
    for step, indices in enumerate(batches):
        for group in optimizer.param_groups:
            group["lr"] = rate(step)
        loss = model(**collate(encoded, indices, tokenizer.pad_token_id)).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.max_grad_norm)
        optimizer.step()
        log.append({"stage": stage, "step": step + 1, "loss": round(loss.item(), 5), "lr": rate(step)})
        line.advance(1, info=f"loss {loss.item():.3f}")
    line.close()
    return log


def pretrain(world: World, tokenizer, recipe: Recipe, board: Board):
    """Pretraining (knowledge, compliance included) then the short alignment stage; returns the
    trained model and the log of both stages."""
    spec = recipe.train
    model = new_model(recipe.model, tokenizer, recipe.seed)
    log = train_stage(model, world.pretraining, tokenizer, recipe, board, "pretrain", spec.steps, lambda step: learning_rate(step, spec))
    log += train_stage(model, world.alignment, tokenizer, recipe, board, "align", spec.align_steps, lambda step: align_learning_rate(step, spec))
    model.eval()
    return model, log
