"""The shapes of the reference study's five models, so ``run --plan`` prices them offline.

``run --plan`` scales measured rates by a model's matmul parameters; for a hub model that
normally means downloading its ``config.json``. The five models of Vennemeyer et al. (2026) are
priced from the numbers below instead, so the plan of the paper's grid runs with no network and
no weights. Numbers from each model's ``config.json`` on the Hugging Face hub (hidden size,
layers, attention and key-value heads, head dimension, MLP width, vocabulary, tied embeddings),
checked on 2026-12-04 against public copies of those files; the Qwen2.5-7B count equals the one
the H200 benchmark measured on the loaded model (``rates.json``), and the tests rebuild every
shape in transformers on the meta device and count its linear layers.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE = "the model's config.json on the Hugging Face hub"


@dataclass(frozen=True)
class Architecture:
    """A decoder's shape: enough to count the weights of its linear layers."""

    family: str  # transformers model_type
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int  # Gemma 2 and Qwen3 set it apart from hidden / heads
    intermediate: int
    vocab: int
    tied_embeddings: bool
    source: str = SOURCE

    def matmul_parameters(self) -> int:
        """Weights of every linear layer as ``lm.loading.matmul_parameters`` counts them: the
        attention projections (q and o: heads x head_dim, k and v: kv_heads x head_dim), the
        gated MLP (three matrices), and the output layer (a linear layer even when its weight is
        tied to the embeddings)."""
        attention = self.hidden * self.head_dim * 2 * (self.heads + self.kv_heads)
        mlp = 3 * self.hidden * self.intermediate
        return self.layers * (attention + mlp) + self.hidden * self.vocab


KNOWN: dict[str, Architecture] = {
    "meta-llama/Llama-3.1-8B-Instruct": Architecture("llama", 4096, 32, 32, 8, 128, 14336, 128256, False),
    "google/gemma-2-2b-it": Architecture("gemma2", 2304, 26, 8, 4, 256, 9216, 256000, True),
    "google/gemma-2-9b-it": Architecture("gemma2", 3584, 42, 16, 8, 256, 14336, 256000, True),
    "Qwen/Qwen2.5-7B-Instruct": Architecture("qwen2", 3584, 28, 28, 4, 128, 18944, 152064, False),
    "Qwen/Qwen3-4B": Architecture("qwen3", 2560, 36, 32, 8, 128, 9728, 151936, True),
}
_BY_LOWER = {name.lower(): architecture for name, architecture in KNOWN.items()}


def known_architecture(name_or_path: str) -> Architecture | None:
    """The shape of one of the study's models by its hub id (any letter case), else None."""
    return _BY_LOWER.get(name_or_path.strip().strip("/").lower())
