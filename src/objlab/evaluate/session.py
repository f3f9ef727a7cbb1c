"""An evaluation session: the base model loaded once, adapters switched in and out by name.

A grid evaluates 100+ adapters and the base model. Reloading an 8B base per adapter would cost
more than evaluating it, so a session holds the base model for its whole life and loads each
adapter beside it as a peft named adapter (a few MB). Generation can then mix adapters in one
batch (``GenerationRequest.adapter``), log-prob scoring switches with ``set_adapter``, and
the base model is evaluated with the adapters disabled -- never a second copy of the weights.
At most ``max_loaded`` adapters stay resident; the least recently used one is deleted first.

An adapter directory written by ``objlab train`` carries ``manifest.json``: the session reads
the objective from it (to present prompts as that objective evaluates them: CFT prepends
``<SAFE>``) and the control tokens it added (added to the tokenizer and embeddings before the
adapter is loaded). A plain peft directory without a manifest is evaluated as it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from objlab.config import ExperimentConfig, ModelSettings
from objlab.config.evaluation import GenerationSettings
from objlab.data.chat import ChatEncoder
from objlab.errors import ConfigError
from objlab.lm.generation import (
    Generated,
    GenerationRequest,
    HFGenerator,
    Progress,
    choose_backend,
)
from objlab.lm.adapters import BASE_ADAPTER, activated, causal_lm_of
from objlab.lm.loading import (
    ModelBundle,
    add_control_tokens,
    load_bundle,
    load_sequence_classifier,
    model_fingerprint,
)
from objlab.lm.logits import LogitHead
from objlab.lm.peft_compat import route_tokenless_adapters
from objlab.objectives import registry
from objlab.records.adapter import MANIFEST_FILE, AdapterManifest, read_manifest
from objlab.records.evaluation import EvaluatedAdapter
from objlab.scoring.base import CAUSAL_LM, SEQUENCE_CLASSIFICATION

DEFAULT_MAX_LOADED = 16


@dataclass(frozen=True)
class AdapterTarget:
    """What one evaluation measures: the base model (``name == "__base__"``) or a loaded adapter."""

    name: str
    path: Path | None = None
    manifest: AdapterManifest | None = None
    objective: str | None = None
    objective_params: dict = field(default_factory=dict)
    control_tokens: tuple[str, ...] = ()

    @property
    def is_base(self) -> bool:
        return self.name == BASE_ADAPTER

    @cached_property
    def _objective(self):
        return None if self.objective is None else registry.build(self.objective, self.objective_params)

    def eval_prompt(self, prompt: str) -> str:
        """The prompt as the adapter's objective presents it at evaluation time."""
        return prompt if self._objective is None else self._objective.eval_prompt(prompt)

    def describe(self) -> EvaluatedAdapter:
        return EvaluatedAdapter(adapter=str(self.path) if self.path else None, objective=self.objective, manifest=self.manifest)


BASE_TARGET = AdapterTarget(BASE_ADAPTER)


def read_adapter_manifest(path: Path) -> AdapterManifest | None:
    """The adapter's manifest (None for a plain peft directory); checks it is an adapter."""
    if not (path / "adapter_config.json").is_file():
        raise ConfigError(f"--adapter: {path} is not a LoRA adapter directory (no adapter_config.json)")
    return read_manifest(path)


def _fingerprint_hash(fingerprint: str) -> str:
    """The weight hash of a local fingerprint (its path differs between machines), else it whole."""
    return fingerprint.rsplit("#", 1)[-1]


class EvalSession:
    """The base model, its tokenizer and the loaded adapters; see the module docstring."""

    def __init__(self, config: ExperimentConfig, bundle: ModelBundle | None = None, max_loaded: int = DEFAULT_MAX_LOADED) -> None:
        self.config = config
        self.bundle = bundle or load_bundle(config.model)
        self.model = self.bundle.model
        self.model.eval()
        self.encoder = ChatEncoder(self.bundle.tokenizer, max_length=config.train.max_length)
        self.max_loaded = max_loaded
        self.backend_name = choose_backend(config.eval.generation.backend, self.bundle.device)
        self.fingerprint = model_fingerprint(config.model, self.bundle.model)
        self.warnings: list[str] = []
        self._targets: dict[Path, AdapterTarget] = {}
        self._last_used: dict[str, int] = {}
        self._uses = 0
        self._loads = 0
        self._vllm = None
        self._shared: dict[str, object] = {}

    @property
    def tokenizer(self):
        return self.bundle.tokenizer

    @property
    def device(self) -> torch.device:
        return self.bundle.device

    # -- adapters ---------------------------------------------------------------------------
    def target(self, adapter: str | Path | None, keep: set[str] = frozenset()) -> AdapterTarget:
        """The target for ``adapter`` (None: the base model), loading it on first use.

        ``keep`` names adapters that must stay loaded (the others of a mixed evaluation).
        """
        if adapter is None:
            return BASE_TARGET
        path = Path(adapter).expanduser().resolve()
        target = self._targets.get(path) or self._load(path, keep)
        self._uses += 1
        self._last_used[target.name] = self._uses
        return target

    def _load(self, path: Path, keep: set[str]) -> AdapterTarget:
        from peft import PeftModel

        manifest = read_adapter_manifest(path)
        target = self._target_from_manifest(path, manifest)
        if target.control_tokens:
            add_control_tokens(self.tokenizer, self.bundle.model, target.control_tokens)
        if isinstance(self.model, PeftModel):
            self.model.load_adapter(str(path), adapter_name=target.name, is_trainable=False)
        else:
            self.model = PeftModel.from_pretrained(self.bundle.model, str(path), adapter_name=target.name, is_trainable=False)
        self.model.set_adapter(target.name, inference_mode=True)  # never leave a to-be-evicted adapter active
        self.model.eval()
        route_tokenless_adapters(self.model, BASE_ADAPTER)
        self._targets[path] = target
        self._evict(keep | {target.name})
        return target

    def _target_from_manifest(self, path: Path, manifest: AdapterManifest | None) -> AdapterTarget:
        self._loads += 1
        name = f"adapter_{self._loads}"
        if manifest is None:
            return AdapterTarget(name=name, path=path)
        if manifest.objective not in registry.names():
            raise ConfigError(
                f"{path / MANIFEST_FILE}: objective {manifest.objective!r} is not registered here "
                f"(known: {', '.join(registry.names())}); import its plugin with `objlab --plugin MODULE`"
            )
        if _fingerprint_hash(manifest.model_fingerprint) != _fingerprint_hash(self.fingerprint):
            self.warnings.append(f"{path}: trained on base {manifest.model_fingerprint}, evaluated on {self.fingerprint}")
        return AdapterTarget(
            name=name,
            path=path,
            manifest=manifest,
            objective=manifest.objective,
            objective_params=dict(manifest.objective_params),
            control_tokens=tuple(manifest.control_tokens),
        )

    def _evict(self, keep: set[str]) -> None:
        """Delete least recently used adapters beyond ``max_loaded`` (never one in ``keep``)."""
        loaded = {target.name: path for path, target in self._targets.items()}
        candidates = sorted((name for name in loaded if name not in keep), key=lambda name: self._last_used.get(name, 0))
        while len(loaded) > self.max_loaded and candidates:
            name = candidates.pop(0)
            self.model.delete_adapter(name)
            del self._targets[loaded.pop(name)]

    def adapter_path(self, name: str) -> Path:
        return next(path for path, target in self._targets.items() if target.name == name)

    def _adds_tokens(self, name: str) -> bool:
        return any(target.control_tokens for target in self._targets.values() if target.name == name)

    @contextlib.contextmanager
    def activated(self, target: AdapterTarget):
        """Forward passes inside run ``target``: its adapter set, or every adapter disabled."""
        self.model.eval()
        with activated(self.model, target.name):
            yield self.model

    def logit_head(self) -> LogitHead:
        """The output layer over the original vocabulary (added control tokens excluded)."""
        return LogitHead.from_model(causal_lm_of(self.model), vocab_limit=self.bundle.base_vocab_size)

    def shared(self, key: str, build: Callable[[], object]):
        """A long-lived helper built once per session (a judge's or translator's client: a
        local judge model must not be reloaded for every adapter)."""
        if key not in self._shared:
            self._shared[key] = build()
        return self._shared[key]

    def scorer_model(self, name_or_path: str, kind: str = CAUSAL_LM):
        """A published judge's weights and tokenizer (hub id or local path), loaded once per
        session on the evaluation's device and shared by every cell: (model, tokenizer).
        ``kind``: a causal LM (the judges that answer in text), or ``sequence-classification``
        (a classifier whose logits are the verdict, ToxiGen's RoBERTa)."""
        if kind == SEQUENCE_CLASSIFICATION:
            return self.shared(f"scorer-model:{kind}:{name_or_path}", lambda: load_sequence_classifier(name_or_path, self.device))
        if kind != CAUSAL_LM:
            raise ValueError(f"unknown scorer model kind {kind!r} (known: {CAUSAL_LM}, {SEQUENCE_CLASSIFICATION})")

        def load():
            bundle = load_bundle(ModelSettings(name_or_path=name_or_path), self.device)
            bundle.model.eval()
            return bundle.model, bundle.tokenizer

        return self.shared(f"scorer-model:{name_or_path}", load)

    # -- generation -------------------------------------------------------------------------
    def _hf(self, settings: GenerationSettings, static: bool) -> HFGenerator:
        return HFGenerator(self.model, self.tokenizer, settings, self.bundle.base_vocab_size, self.device, static=static)

    def _primary(self, settings: GenerationSettings):
        if self.backend_name != "vllm":
            return self._hf(settings, static=self.backend_name == "hf-static")
        if self._vllm is None:
            from objlab.evaluate.backends.vllm_backend import VLLMGenerator

            self._vllm = VLLMGenerator(
                self.config.model.name_or_path,
                settings,
                self.adapter_path,
                self._adds_tokens,
                max_lora_rank=max(self.config.lora.r, 16),
                dtype=self.config.model.dtype,
            )
        self._vllm.settings = settings
        return self._vllm

    def generate(self, requests: list[GenerationRequest], settings: GenerationSettings | None = None, progress: Progress | None = None) -> list[Generated]:
        """Decode ``requests`` (any mix of loaded adapters and the base); input order kept.

        Requests the configured backend cannot serve (vLLM and added tokens) go to ``hf``.
        """
        settings = settings or self.config.eval.generation
        primary = self._primary(settings)
        served = [index for index, request in enumerate(requests) if primary.supports(request.adapter)]
        results: list[Generated | None] = [None] * len(requests)
        for index, generated in zip(served, primary.generate([requests[i] for i in served], progress)):
            results[index] = generated
        rest = [index for index in range(len(requests)) if results[index] is None]
        if rest:
            for index, generated in zip(rest, self._hf(settings, static=False).generate([requests[i] for i in rest], progress)):
                results[index] = generated
        return results  # type: ignore[return-value]

    def warm_up(self, requests: list[GenerationRequest], settings: GenerationSettings | None = None) -> int:
        """Run, outputs dropped, one batch of each shape ``generate(requests)`` will use, so that
        compiling them (``hf-static`` on GPU) happens here and not inside a timed window or the
        first real batch; returns how many batches ran (0 for a backend with nothing to warm)."""
        primary = self._primary(settings or self.config.eval.generation)
        if not hasattr(primary, "warm_up"):
            return 0
        return primary.warm_up([request for request in requests if primary.supports(request.adapter)])

    def describe(self) -> dict:
        return {
            "backend": self.backend_name,
            "device": str(self.device),
            "dtype": str(next(self.bundle.model.parameters()).dtype).removeprefix("torch."),
            "model": self.config.model.name_or_path,
            "model_fingerprint": self.fingerprint,
        }
