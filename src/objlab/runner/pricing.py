"""GPU-hours for ``run --plan --gpu NAME``: measured rates, or rates derived from another GPU's.

``runner/rates.json`` holds rates measured by ``benchmarks/`` per machine kind (the name torch
reports for the GPU). A GPU with measured rates is priced at them. A GPU without is priced at
the rates of one that has them, scaled by the two GPUs' published specifications and labelled
*derived*: training and log-likelihood scoring (compute-bound) by the ratio of their dense bf16
peaks, decoding (bound by reading the weights once per token) by the ratio of their memory
bandwidths. The H100 (SXM) and H200 have the same bf16 peak and differ in memory bandwidth
(3.35 against 4.8 TB/s), so an H100 estimate is the H200's with decoding about 0.70x as fast.
"""

from __future__ import annotations

from dataclasses import dataclass

from objlab.errors import ConfigError


@dataclass(frozen=True)
class GpuSpec:
    """A GPU as torch names it, with the published numbers a derived rate is scaled by."""

    kind: str  # torch.cuda.get_device_name(): the key of rates.json
    bf16_dense_tflops: float
    memory_tb_s: float
    source: str


GPUS: dict[str, GpuSpec] = {
    "H100": GpuSpec("NVIDIA H100 80GB HBM3", 989.4, 3.35, "NVIDIA H100 (SXM5) datasheet"),
    "H200": GpuSpec("NVIDIA H200", 989.4, 4.8, "NVIDIA H200 (SXM) datasheet"),
}
COMPUTE_RATES = ("train_tokens_per_s", "score_items_per_s")
MEMORY_RATES = ("generate_tokens_per_s",)


@dataclass(frozen=True)
class PricedRates:
    """The rates a plan is priced at and where they come from (printed with the estimate)."""

    gpu: str
    rates: dict
    label: str
    derived: bool


def gpu_spec(name: str) -> GpuSpec:
    key = name.strip().upper()
    if key not in GPUS:
        raise ConfigError(f"--gpu: unknown GPU {name!r} (known: {', '.join(GPUS)})")
    return GPUS[key]


def _derived(spec: GpuSpec, base: GpuSpec, rates: dict) -> dict:
    compute, memory = spec.bf16_dense_tflops / base.bf16_dense_tflops, spec.memory_tb_s / base.memory_tb_s
    scaled = dict(rates)
    scaled.update({key: rates[key] * compute for key in COMPUTE_RATES})
    scaled.update({key: rates[key] * memory for key in MEMORY_RATES})
    return scaled


def rates_for_gpu(name: str, measured: dict[str, dict]) -> PricedRates:
    """The rates for GPU ``name`` (H100, H200): measured when ``measured`` (rates.json) has
    them, else derived from a GPU that has, as the module says."""
    spec = gpu_spec(name)
    label = name.strip().upper()
    if spec.kind in measured:
        rates = measured[spec.kind]
        return PricedRates(label, rates, f"measured on one {spec.kind} {rates.get('measured', '')}".rstrip(), False)
    for base_name, base in GPUS.items():
        if base.kind in measured:
            rates = measured[base.kind]
            compute, memory = spec.bf16_dense_tflops / base.bf16_dense_tflops, spec.memory_tb_s / base.memory_tb_s
            label_text = (f"DERIVED from the {base_name}'s rates measured {rates.get('measured', '?')}: training and scoring x {compute:.2f} "
                          f"(bf16 peak {spec.bf16_dense_tflops:g}/{base.bf16_dense_tflops:g} TFLOPS), decoding x {memory:.2f} "
                          f"(memory {spec.memory_tb_s:g}/{base.memory_tb_s:g} TB/s; {spec.source}, {base.source})")
            return PricedRates(label, _derived(spec, base, rates), label_text, True)
    raise ConfigError(f"--gpu {name}: no measured GPU rates to price or derive it from (run benchmarks/ on a GPU with --save-rates)")


def gpu_hours(estimate: dict | None) -> float | None:
    """Training and evaluation seconds of one GPU as hours (None when there is no estimate)."""
    if not estimate:
        return None
    return (estimate["train_s"] + estimate["eval_s"]) / 3600
