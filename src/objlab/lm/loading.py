"""Loading a base model, its tokenizer and chat template, and LoRA adapters.

Shared by training and evaluation (both need the same tokenizer, template, dtype and control
tokens, or their numbers would not be comparable). A model is named by hub id or local path;
offline, a local path works and a hub id fails with a message that says so.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from objlab.config.sections import LoraSettings, ModelSettings
from objlab.errors import ConfigError

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device() -> torch.device:
    """The device a cell runs on: the first CUDA GPU when there is one, else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def resolve_dtype(setting: str, device: torch.device) -> torch.dtype:
    """``auto`` means bf16 on a GPU that supports it (fp16 otherwise) and fp32 on the CPU."""
    if setting != "auto":
        return _DTYPES[setting]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _read_template(value: str) -> str:
    path = Path(value).expanduser()
    if value.endswith(".jinja") or (len(value) < 512 and "{" not in value and path.is_file()):
        if not path.is_file():
            raise ConfigError(f"model.chat_template: template file {value} not found")
        return path.read_text()
    return value


def _hub_error(settings: ModelSettings, error: Exception) -> ConfigError:
    where = settings.name_or_path
    if Path(where).expanduser().exists():
        return ConfigError(f"model.name_or_path: {where} exists but could not be loaded: {error}")
    return ConfigError(
        f"model.name_or_path: {where!r} is not a local directory and could not be loaded from the hub "
        f"({type(error).__name__}: {error}). Offline, point it at a local Hugging Face model directory."
    )


def load_tokenizer(settings: ModelSettings):
    """The model's tokenizer with a pad token and a chat template (config override first)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            settings.name_or_path, revision=settings.revision, trust_remote_code=settings.trust_remote_code
        )
    except (OSError, ValueError) as error:
        raise _hub_error(settings, error) from None
    if settings.chat_template:
        tokenizer.chat_template = _read_template(settings.chat_template)
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            f"model.chat_template: the tokenizer of {settings.name_or_path} has no chat template; "
            "set model.chat_template to a Jinja template or a .jinja file"
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base_model(settings: ModelSettings, device: torch.device | None = None):
    """The frozen base causal LM on ``device`` in the configured dtype (fp32 on CPU by default)."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # objlab shows its own progress
    device = device or pick_device()
    dtype = resolve_dtype(settings.dtype, device)
    kwargs = {"revision": settings.revision, "trust_remote_code": settings.trust_remote_code, "dtype": dtype}
    if settings.attn_implementation:
        kwargs["attn_implementation"] = settings.attn_implementation
    try:
        model = AutoModelForCausalLM.from_pretrained(settings.name_or_path, **kwargs)
    except (OSError, ValueError) as error:
        raise _hub_error(settings, error) from None
    model.to(device)
    model.requires_grad_(False)
    return model


def add_control_tokens(tokenizer, model, tokens: tuple[str, ...]) -> list[int]:
    """Add control tokens (CFT's ``<SAFE>``/``<UNSAFE>``) as special tokens; returns their ids.

    The embedding matrix grows to hold them. Their rows are trained through peft's
    ``trainable_token_indices`` and saved with the adapter. objlab computes every log-prob over
    the original vocabulary only (see ``LogitHead.vocab_limit``), so the added rows never change
    any probability of the base model or of other adapters.
    """
    missing = [token for token in tokens if token not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    ids = [tokenizer.convert_tokens_to_ids(token) for token in tokens]
    if model is not None and max(ids) >= model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        with torch.no_grad():
            embeddings = model.get_input_embeddings().weight
            mean = embeddings[: min(ids)].float().mean(0)
            for token_id in ids:
                embeddings[token_id] = mean.to(embeddings.dtype)
    return ids


def lora_config(settings: LoraSettings, trainable_token_ids: list[int] | None = None):
    """The peft LoraConfig shared by every cell (the study's defaults unless configured)."""
    from peft import LoraConfig, TaskType

    kwargs = {}
    if trainable_token_ids:
        kwargs["trainable_token_indices"] = {"embed_tokens": list(trainable_token_ids)}
    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        bias="none",
        **kwargs,
    )


def model_fingerprint(settings: ModelSettings, model=None) -> str:
    """What identifies the exact weights: the hub commit, or a hash of the local files.

    For a local directory the hash covers config.json and, per weight file, its size and its
    first and last MiB (reading whole multi-GB files for a fingerprint would cost minutes).
    """
    path = Path(settings.name_or_path).expanduser()
    if not path.is_dir():
        commit = getattr(getattr(model, "config", None), "_commit_hash", None)
        return f"hub:{settings.name_or_path}@{commit or settings.revision or 'unknown'}"
    digest = hashlib.sha256()
    for file in sorted(path.iterdir()):
        if not file.is_file() or file.suffix not in {".json", ".safetensors", ".bin", ".model", ".jinja"}:
            continue
        size = file.stat().st_size
        digest.update(f"{file.name}:{size}".encode())
        with file.open("rb") as handle:
            digest.update(handle.read(1 << 20))
            if size > 2 << 20:
                handle.seek(-(1 << 20), os.SEEK_END)
                digest.update(handle.read())
    return f"path:{path}#{digest.hexdigest()[:16]}"


def matmul_parameters(model) -> int:
    """Weights of every linear layer, output layer included, LoRA's own layers excluded: what
    decoding and training throughput scale with (``run --plan`` scales measured rates by it)."""
    return sum(
        module.weight.numel()
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and "lora_" not in name
    )


@dataclass
class ModelBundle:
    """A loaded base model with its tokenizer, kept together so a grid can load them once."""

    model: object
    tokenizer: object
    device: torch.device
    settings: ModelSettings

    @property
    def base_vocab_size(self) -> int:
        """Vocabulary size before any control token was added: log-probs are taken over it."""
        return self._base_vocab

    def __post_init__(self) -> None:
        self._base_vocab = self.model.get_output_embeddings().weight.shape[0]


def load_bundle(settings: ModelSettings, device: torch.device | None = None) -> ModelBundle:
    device = device or pick_device()
    tokenizer = load_tokenizer(settings)
    model = load_base_model(settings, device)
    return ModelBundle(model=model, tokenizer=tokenizer, device=device, settings=settings)


def load_sequence_classifier(name_or_path: str, device: torch.device | None = None):
    """A published text classifier (a ``*ForSequenceClassification`` model: ToxiGen's RoBERTa)
    and its tokenizer, by hub id or local path, in float32 on ``device``, frozen: (model,
    tokenizer). Float32 whatever the evaluation's dtype, so its probabilities are the
    published model's own. Kept beside the causal-LM loader so every model loads in one place."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        model = AutoModelForSequenceClassification.from_pretrained(name_or_path, dtype=torch.float32)
    except (OSError, ValueError) as error:
        where = "exists but could not be loaded" if Path(name_or_path).expanduser().exists() else \
            "is not a local directory and could not be loaded from the hub (offline, give a local copy's path)"
        raise ConfigError(f"classifier {name_or_path!r} {where}: {type(error).__name__}: {error}") from None
    model.to(device or pick_device())
    model.requires_grad_(False)
    model.eval()
    return model, tokenizer
