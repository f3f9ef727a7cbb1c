"""Every use of peft's internals, in one place, each with the peft versions it was tested on.

objlab leans on three things peft does not expose as public API:

- **Per-row adapter routing during decoding** (``forward_hooks``): peft's ``generate`` and
  ``forward`` take ``adapter_names`` and install forward hooks on every LoRA module for the
  call (``PeftModel._enable_peft_forward_hooks``). objlab's decode loop calls the model once per
  token, so it installs those hooks once per batch composition instead of once per token.
- **Adapters with and without trained token rows in one model** (``route_tokenless_adapters``):
  CFT's ``<SAFE>``/``<UNSAFE>`` embeddings live in peft's ``TrainableTokensWrapper``, whose
  state-dict load map and mixed-batch forward assume every adapter has token rows.
- **The output layer under the token wrapper** (``plain_output_layer``): with tied embeddings
  the wrapper also wraps ``lm_head``; objlab reads the base layer beneath it.
- **LoRA folded into the weights for sampling** (``folded_lora``): ``aware`` samples from the
  policy it is training at every step; a decode step through peft's LoRA layers runs three
  extra small products and peft's Python per adapted module, a third of a decode step of a
  small model on CPU. Folded copies of the weights are used instead, where they are exact
  enough (float32 and wider) and small beside the machine's memory.

``check_version`` is called before any of them is used; the package pins peft to
``TESTED_PEFT`` in ``pyproject.toml``, and ``tests/unit/lm/test_peft_compat.py`` exercises each
workaround, so a peft upgrade that breaks one fails a named test rather than a figure.
"""

from __future__ import annotations

import contextlib
import functools
import warnings

from packaging.version import Version

TESTED_PEFT = (Version("0.21"), Version("0.22"))  # [low, high): keep in step with pyproject.toml


@functools.cache
def check_version() -> str:
    """The installed peft version; warns once when it is outside the tested range."""
    import peft

    installed = Version(peft.__version__)
    low, high = TESTED_PEFT
    if not low <= installed < high:
        warnings.warn(
            f"peft {installed} is outside the range objlab's peft workarounds were tested on (>={low},<{high}): "
            "mixed-adapter decoding and CFT's control tokens use peft internals (objlab.lm.peft_compat); "
            "run tests/unit/lm/test_peft_compat.py before trusting figures",
            RuntimeWarning,
            stacklevel=2,
        )
    return str(installed)


def forward_hooks(model, adapter_names: list[str] | None) -> contextlib.ExitStack:
    """An open context in which each row of a forward goes through its adapter in
    ``adapter_names`` (peft's ``_enable_peft_forward_hooks``); close it to remove the hooks.
    With ``adapter_names=None`` nothing is installed."""
    stack = contextlib.ExitStack()
    if adapter_names is not None:
        check_version()
        if not hasattr(model, "_enable_peft_forward_hooks"):
            raise ValueError("adapter_names given for a model without peft adapters")
        stack.enter_context(model._enable_peft_forward_hooks(adapter_names=adapter_names))
    return stack


def plain_output_layer(head, vocab_limit: int):
    """The plain output layer under peft's trainable-token wrapper.

    With tied embeddings, CFT's trained control-token rows also wrap the output layer. Those
    rows lie past ``vocab_limit`` (control tokens are appended to the vocabulary, and objlab's
    log-probs never cover them), so the rows used are exactly the base layer's."""
    from peft.utils.other import TrainableTokensWrapper

    if not isinstance(head, TrainableTokensWrapper):
        return head
    check_version()
    layer = head.token_adapter
    indices = [index for rows in layer.token_indices.values() for index in rows]
    if indices and min(indices) < vocab_limit:
        raise TypeError(f"trainable token rows {sorted(indices)} fall inside the scored vocabulary (< {vocab_limit})")
    return layer.base_layer


def route_tokenless_adapters(model, base_adapter: str) -> None:
    """Let one model hold adapters with and without trained token rows.

    Two places of peft's ``TrainableTokensWrapper`` assume every adapter has token rows, and
    fail on an adapter without them (an SFT adapter beside a CFT one):

    - loading: its state-dict load map asks every adapter's weights for a token delta (peft's
      own ``ModulesToSaveWrapper`` returns ``{}`` for adapters it does not serve; this does
      the same);
    - mixed batches (``adapter_names``): it looks every row's adapter up among its own. Such
      rows must see the original embedding -- exactly what it does for ``base_adapter`` -- so
      their names are mapped to it for this module only; the LoRA layers see the real names.

    Idempotent; applied after every adapter load and before loading one.
    """
    from peft.utils.other import TrainableTokensWrapper

    for module in model.modules():
        if not isinstance(module, TrainableTokensWrapper) or "_mixed_batch_forward" in module.__dict__:
            continue
        check_version()
        original = module._mixed_batch_forward
        original_load_map = module.adapter_state_dict_load_map

        def mixed_batch_forward(input, *args, adapter_names, _module=module, _original=original, **kwargs):
            names = [name if name in _module._adapters else base_adapter for name in adapter_names]
            return _original(input, *args, adapter_names=names, **kwargs)

        def load_map(adapter_name, _module=module, _original=original_load_map):
            return _original(adapter_name) if adapter_name in _module._adapters else {}

        module._mixed_batch_forward = mixed_batch_forward
        module.adapter_state_dict_load_map = load_map


# Fold only where W + BA keeps the update: in float32 a LoRA delta is rounded to 2^-24 of its
# weight, in bfloat16 to 2^-8, which would sample from a policy nearer the base than the one
# being trained.
FOLDABLE_DTYPES = ("float32", "float64")


def _foldable_lora_layers(model) -> list[tuple] | None:
    """(LoRA layer, its adapter) to fold, or None where folding would not give the same
    policy: no LoRA layer, a layer that is not a plain ``Linear`` over a float32/64 weight,
    other than one active adapter, an adapter already merged or switched off, a DoRA (or other
    variant) adapter, or a LoRA bias (the fold, ``W + scale * B @ A``, covers neither)."""
    import torch
    from peft.tuners.lora import LoraLayer

    folds = []
    for layer in model.modules():
        if not isinstance(layer, LoraLayer):
            continue
        adapters = [name for name in layer.active_adapters if name in layer.lora_A]
        if len(adapters) != 1 or layer.merged or layer.disable_adapters:
            return None
        adapter = adapters[0]
        if layer.use_dora.get(adapter) or layer.lora_variant.get(adapter) is not None or layer.lora_bias.get(adapter):
            return None
        if type(layer.base_layer) is not torch.nn.Linear or str(layer.base_layer.weight.dtype).removeprefix("torch.") not in FOLDABLE_DTYPES:
            return None
        if layer.fan_in_fan_out or type(layer.lora_A[adapter]) is not torch.nn.Linear or type(layer.lora_B[adapter]) is not torch.nn.Linear:
            return None  # the fold below is B.weight @ A.weight, the layout of Linear's weights
        folds.append((layer, adapter))
    return folds or None


def _total_bytes(device) -> int:
    """The memory of ``device`` (a CUDA device's, else the machine's MemTotal): a constant of
    the machine, so whether a run folds never depends on what else was running."""
    import torch

    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[1]
    try:
        with open("/proc/meminfo") as handle:
            fields = dict(line.split(":", 1) for line in handle)
        return int(fields["MemTotal"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 0  # unknown: do not fold


class FoldBuffers:
    """The folded copies of ``folded_lora``, kept per LoRA layer between calls (a layer that is
    gone takes its buffer with it)."""

    def __init__(self) -> None:
        import weakref

        self._buffers = weakref.WeakKeyDictionary()

    def buffer_for(self, layer, weight):
        """A tensor shaped, typed and placed like ``weight``, the same one on every call."""
        import torch

        buffer = self._buffers.get(layer)
        if buffer is None or buffer.shape != weight.shape or buffer.dtype != weight.dtype or buffer.device != weight.device:
            buffer = self._buffers[layer] = torch.empty_like(weight, memory_format=torch.contiguous_format)
        return buffer


@contextlib.contextmanager
def folded_lora(model, memory_share: float = 0.125, buffers: FoldBuffers | None = None):
    """A context in which ``model``'s LoRA layers compute with their base weight plus the
    adapter's update folded into a copy (``W + scale * B @ A``), their LoRA branch switched
    off; yields whether it folded. The trained weights are never touched: each layer's base
    weight is swapped for the copy and put back on exit, exceptions included.

    It folds only when every LoRA layer is a plain Linear over float32/64 weights with one
    active adapter (``_foldable_lora_layers``) and the copies take at most ``memory_share`` of
    the memory of the weights' device (its total, so the choice is the same on every run on
    that machine); otherwise it yields False and the model is unchanged. For sampling with no
    gradient: outputs equal the unfolded model's to float rounding.

    ``buffers`` (a ``FoldBuffers`` the caller keeps) holds the copies from one call to the
    next, rewritten in place: allocating them afresh cost more than folding itself (on the
    Qwen2.5-0.5B shape on CPU, 1.8-7 s of page faults per call against 0.3 s for the products),
    a fifth of what ``aware``'s sampling then spent decoding. The copies then stay in memory
    between calls (within ``memory_share``).
    """
    import torch

    folds = _foldable_lora_layers(model)
    if folds is not None:
        check_version()
        weight = folds[0][0].base_layer.weight
        copies = sum(layer.base_layer.weight.numel() for layer, _ in folds) * weight.element_size()
        if copies > memory_share * _total_bytes(weight.device):
            folds = None
    if folds is None:
        yield False
        return
    swapped = []
    try:
        with torch.no_grad():
            for layer, adapter in folds:
                original = layer.base_layer.weight
                up, down = (module[adapter].weight.to(original.dtype) for module in (layer.lora_B, layer.lora_A))
                target = buffers.buffer_for(layer, original) if buffers is not None else None
                folded = torch.addmm(original, up, down, alpha=layer.scaling[adapter], out=target)
                swapped.append((layer, original))
                layer.base_layer.weight = torch.nn.Parameter(folded, requires_grad=False)
                layer._disable_adapters = True
        yield True
    finally:
        for layer, original in swapped:
            layer.base_layer.weight = original
            layer._disable_adapters = False
