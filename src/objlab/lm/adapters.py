"""Which weights a forward pass runs with: one LoRA adapter, several per row, or none.

The reference policy of DPO, KL and ``aware`` and the base model of every evaluation are the
same model with its adapters disabled (DESIGN: never a second copy of the weights). Training
and evaluation both switch adapters through the helpers here, so there is one definition of
"the base model" in objlab.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence

BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in a mixed-adapter batch


def causal_lm_of(model):
    """The transformers CausalLM inside a peft model (LoRA layers are injected in place)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def forward_accepts(model, argument: str) -> bool:
    """Whether the transformers model's forward (inside a peft model: peft's takes **kwargs)
    takes ``argument``."""
    return argument in inspect.signature(causal_lm_of(model).forward).parameters


def reference_disabled(model):
    """Context in which the model computes the reference policy: peft's disabled adapter."""
    if hasattr(model, "disable_adapter"):
        return model.disable_adapter()
    return contextlib.nullcontext()


@contextlib.contextmanager
def activated(model, adapter: str) -> Iterator[None]:
    """Forward passes inside run with ``adapter`` active, or with every adapter disabled for
    ``BASE_ADAPTER``. A plain model (no peft) serves only the base."""
    if adapter == BASE_ADAPTER:
        with reference_disabled(model):
            yield
        return
    if not hasattr(model, "set_adapter"):
        raise ValueError(f"adapter {adapter!r} requested from a model without adapters")
    model.set_adapter(adapter, inference_mode=True)
    yield


@contextlib.contextmanager
def routed(model, adapters: Sequence[str]) -> Iterator[list[str] | None]:
    """Yields the per-row ``adapter_names`` to pass to the forward, or None when the rows
    share one adapter: then that adapter is simply made active (or all are disabled for the
    base). peft's mixed-batch path splits every LoRA layer's input by adapter, which costs a
    tiny or CPU model more than the LoRA itself and gives the same outputs (tested)."""
    names = list(adapters)
    if not hasattr(model, "peft_config"):
        if set(names) - {BASE_ADAPTER}:
            raise ValueError(f"adapters {sorted(set(names) - {BASE_ADAPTER})} requested from a model without adapters")
        yield None
        return
    if len(set(names)) > 1:
        yield names
        return
    with activated(model, names[0]):
        yield None
