"""What every benchmark script shares: model shapes and building, data rows, the timing window,
peak memory, worker subprocesses, and the one markdown table (plus JSON) each script prints.

Fairness rules every script follows (see benchmarks/README.md):

- objlab and the reference run on the same model (same shape, same random weights: built from
  the same config with the same seed), the same data rows in the same order, the same batch
  size, LoRA and dtype;
- each configuration runs in its own Python subprocess (``run_configs``), one after another,
  so memory peaks, allocator caches, thread pools and compiled graphs never leak between runs;
- throughput is measured over a steady-state window (``Window``) after warm-up, with the device
  synchronised at both ends; set-up (building trainers, tokenising, warm-up) is reported in its
  own column and never mixed into throughput;
- task tokens are counted as objlab's budget counts them (DESIGN.md: prompt + reference response
  under the chat template, no padding), for both sides, from the same rows.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("OBJLAB_SHARED_DATA", REPO.parent / "shared" / "data"))
GSM8K = SHARED_DATA / "gsm8k" / "train_first1000.jsonl"
PERSONA_DIR = SHARED_DATA / "persona"
TRAITS = ("machiavellianism", "narcissism", "psychopathy")
CACHE = Path(os.environ.get("OBJLAB_BENCH_CACHE", Path(tempfile.gettempdir()) / "objlab-bench"))
TOKENIZER_VOCAB = 8000

# The study's LoRA (DESIGN.md): r=16, alpha=32, dropout 0.05 on every attention and MLP projection.
LORA = {"r": 16, "alpha": 32, "dropout": 0.05}


# -- model shapes ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    """A decoder architecture. Throughput depends on the shape, not on the weights, so GPU runs
    use public architecture numbers with random weights (no download)."""

    name: str
    family: str  # "llama" or "qwen2"
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tie_embeddings: bool
    train_batch: int  # the batch size the figures use for this shape

    def model_config(self, tokenizer):
        """A transformers config for this shape (pad/eos from the benchmark tokenizer)."""
        common = dict(
            vocab_size=self.vocab,
            hidden_size=self.hidden,
            intermediate_size=self.intermediate,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            num_key_value_heads=self.kv_heads,
            tie_word_embeddings=self.tie_embeddings,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            bos_token_id=None,
        )
        if self.family == "llama":
            from transformers import LlamaConfig

            return LlamaConfig(max_position_embeddings=2048, **common)
        from transformers import Qwen2Config

        # Qwen2.5's public config.json: rope theta 1e6, RMSNorm eps 1e-6, q/k/v biases (Qwen2 has them).
        return Qwen2Config(max_position_embeddings=32768, rope_theta=1_000_000.0, rms_norm_eps=1e-6, **common)


SHAPES = {
    # CPU: the reference shape (4 layers, d=256, vocab 8k: 5.2M matmul parameters).
    "llama-tiny": Shape("llama-tiny", "llama", 256, 4, 4, 4, 688, TOKENIZER_VOCAB, False, 4),
    # For the smoke test only: the smallest model the scripts run end to end.
    "llama-smoke": Shape("llama-smoke", "llama", 64, 2, 4, 2, 128, TOKENIZER_VOCAB, False, 2),
    # Public Qwen2.5 architecture numbers (config.json of Qwen/Qwen2.5-0.5B and Qwen/Qwen2.5-7B).
    "qwen2.5-0.5b": Shape("qwen2.5-0.5b", "qwen2", 896, 24, 14, 2, 4864, 151936, True, 16),
    "qwen2.5-7b": Shape("qwen2.5-7b", "qwen2", 3584, 28, 28, 4, 18944, 152064, False, 8),
}


def default_shapes(device: str) -> list[str]:
    """CPU: the tiny reference shape and the real Qwen2.5-0.5B shape (a few steps, fp32: what a
    user without a GPU runs); GPU: the Qwen2.5-0.5B shape (add ``--shape qwen2.5-7b``)."""
    return ["llama-tiny", "qwen2.5-0.5b"] if device == "cpu" else ["qwen2.5-0.5b"]


def shape_list(text: str | None, device: str) -> list[str]:
    """``--shape`` (comma-separated names) or the device's default shapes; unknown names refused."""
    names = [part.strip() for part in text.split(",") if part.strip()] if text else default_shapes(device)
    unknown = [name for name in names if name not in SHAPES]
    if unknown:
        raise SystemExit(f"--shape: unknown shape(s) {', '.join(unknown)} (known: {', '.join(sorted(SHAPES))})")
    return names


def is_real_size(shape_name: str) -> bool:
    """A public model architecture (the Qwen2.5 shapes), as opposed to the tiny test shapes."""
    return SHAPES[shape_name].family == "qwen2"


# -- tokenizer and model ----------------------------------------------------------------------------
def _atomic_dir(target: Path, build: Callable[[Path], None]) -> Path:
    """A cache directory built whole or not at all (objlab's own helper, as the organism cache uses)."""
    from objlab.atomic import build_directory

    def build_marked(path: Path) -> None:
        build(path)
        (path / ".complete").write_text("")

    return build_directory(target, build_marked, lambda path: (path / ".complete").is_file())


def corpus_texts() -> list[str]:
    """The text the benchmark tokenizer is trained on: every GSM8K row and persona statement."""
    texts = [row["question"] + "\n" + row["answer"] for row in gsm8k_rows()]
    for trait in TRAITS:
        with (PERSONA_DIR / f"{trait}.jsonl").open() as handle:
            texts += [json.loads(line)["question"] + " Yes No" for line in handle if line.strip()]
    return texts


def tokenizer_dir(vocab: int = TOKENIZER_VOCAB) -> Path:
    """A byte-level BPE tokenizer with objlab's chat template, trained on the benchmark data
    with ``objlab.organism.tokenizer`` (cached; seconds to build)."""
    digest = hashlib.sha256(f"{GSM8K.stat().st_size}:{vocab}:v1".encode()).hexdigest()[:12]

    def build(path: Path) -> None:
        from objlab.organism.tokenizer import train_tokenizer

        train_tokenizer(corpus_texts(), vocab_size=vocab).save_pretrained(path)

    return _atomic_dir(CACHE / f"tokenizer-{vocab}-{digest}", build)


def load_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir())


def model_dir(shape_name: str, with_weights: bool = False, seed: int = 0) -> Path:
    """A Hugging Face model directory for ``shape``: tokenizer + config.json, and with
    ``with_weights`` random fp32 weights (only for small shapes: evaluation loads them from disk)."""
    shape = SHAPES[shape_name]
    suffix = f"-w{seed}" if with_weights else "-config"

    def build(path: Path) -> None:
        tokenizer = load_tokenizer()
        tokenizer.save_pretrained(path)
        config = shape.model_config(tokenizer)
        if with_weights:
            build_model(shape_name, "cpu", "float32", seed, tokenizer).save_pretrained(path)
        else:
            config.save_pretrained(path)

    return _atomic_dir(CACHE / f"model-{shape_name}{suffix}-{tokenizer_dir().name}", build)


def build_model(shape_name: str, device: str, dtype: str, seed: int = 0, tokenizer=None):
    """A randomly initialised causal LM of ``shape`` on ``device`` (same seed -> same weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = tokenizer or load_tokenizer()
    config = SHAPES[shape_name].model_config(tokenizer)
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.requires_grad_(False)
    return model


def default_dtype(device: str) -> str:
    """fp32 on CPU, bf16 on GPU (the issue's matched dtype)."""
    return "float32" if device == "cpu" else "bfloat16"


def matmul_parameters(model) -> int:
    """Weights of every linear layer, output layer included (LoRA layers excluded): objlab's
    own count, the one ``run --plan`` scales its rates by."""
    from objlab.lm.loading import matmul_parameters as count

    return count(model)


def bundle_for(model, tokenizer, device: str, path: Path, dtype: str):
    """An objlab ``ModelBundle`` around an already built model (objlab then skips loading)."""
    import torch

    from objlab.config import ModelSettings
    from objlab.lm.loading import ModelBundle

    settings = ModelSettings(name_or_path=str(path), dtype=dtype)
    return ModelBundle(model=model, tokenizer=tokenizer, device=torch.device(device), settings=settings)


# -- data ------------------------------------------------------------------------------------------
def gsm8k_rows(limit: int | None = None) -> list[dict]:
    """GSM8K rows (``question``, ``answer``) from the shared data, in file order."""
    rows = []
    with GSM8K.open() as handle:
        for line in handle:
            if line.strip():
                rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def persona_items(count: int) -> list:
    """``count`` persona statements, as evenly as possible from the three default traits."""
    from objlab.evaluate.axes.sources import load_persona

    per_trait = -(-count // len(TRAITS))
    items = []
    for trait in TRAITS:
        items += load_persona(str(PERSONA_DIR / f"{trait}.jsonl"), per_trait)
    return items[:count]


# -- devices, timing and memory -----------------------------------------------------------------------
def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


class Window:
    """Wall time of a steady-state window, the device synchronised at both ends."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.started: float | None = None
        self.stopped: float | None = None

    def start(self) -> None:
        sync(self.device)
        self.started = time.perf_counter()

    def stop(self) -> None:
        sync(self.device)
        self.stopped = time.perf_counter()

    @property
    def seconds(self) -> float:
        return self.stopped - self.started


def _proc_status(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class PeakMemory:
    """Peak memory from ``reset()`` on. GPU: ``torch.cuda.max_memory_allocated`` (everything
    allocated, weights included). CPU: the process's peak resident set (VmHWM, reset through
    /proc/self/clear_refs) minus its resident set at ``reset()`` -- so on CPU the figure is what
    the run added on top of the interpreter and libraries."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.baseline = 0
        self.method = ""
        self.reset()

    def reset(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.method = "torch.cuda.max_memory_allocated"
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.method = "peak RSS delta (VmHWM after clear_refs)"
        except OSError:
            self.method = "peak RSS delta (ru_maxrss; may include earlier peaks)"
        self.baseline = _proc_status("VmRSS") or 0

    def peak_bytes(self) -> int:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            return int(torch.cuda.max_memory_allocated())
        peak = _proc_status("VmHWM")
        if peak is None:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return max(0, peak - self.baseline)


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name()
    import torch

    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()})"


def machine_kind(device: str) -> str:
    """The key objlab's ``run --plan`` looks rates up by."""
    from objlab.runner.plan import machine_kind as kind

    return kind(device)


def bf16_matmul_peak(device: str, size: int = 8192, repeats: int = 50, trials: int = 3) -> float:
    """Measured bf16 matmul FLOP/s: the best of ``trials`` timed loops of ``repeats`` square matmuls."""
    import torch

    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(5):
        a @ b
    best = 0.0
    for _ in range(trials):
        window = Window(device)
        window.start()
        for _ in range(repeats):
            a @ b
        window.stop()
        best = max(best, 2 * size**3 * repeats / window.seconds)
    return best


def environment(device: str) -> dict:
    import torch
    import transformers

    info = {
        "device": device_name(device),
        "machine_kind": machine_kind(device),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    with contextlib.suppress(ImportError):
        import peft

        info["peft"] = peft.__version__
    with contextlib.suppress(ImportError):
        import trl

        info["trl"] = trl.__version__
    return info


# -- configurations in subprocesses -------------------------------------------------------------------
WORKER_FLAG = "--worker"


class Budget:
    """The time a script may spend on its configurations (``--budget``), so a short GPU lease
    gets every configuration that fits and a table of them, never a run cut off mid-way.

    A configuration starts only if the time left is at least what it is expected to need: the
    longest one that ended on its own so far (finished or failed; one stopped by its limit
    says nothing about the next), and the per-configuration limit before any has. It then
    runs under the per-configuration limit or the time left, whichever is shorter, so the
    script never runs past its budget. Without a budget every configuration runs under the
    limit alone."""

    def __init__(self, seconds: float | None, limit: float | None) -> None:
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.limit = limit
        self.longest: float | None = None

    def left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def needed(self) -> float:
        return self.longest if self.longest is not None else (self.limit or 0.0)

    def refusal(self) -> str | None:
        """Why the next configuration may not start, or None when it fits."""
        left = self.left()
        if left is None or left >= self.needed():
            return None
        return f"skipped: {left:.0f} s left of the budget, a configuration here needs about {self.needed():.0f} s"

    def timeout(self) -> float | None:
        left = self.left()
        if left is None:
            return self.limit
        return max(1.0, left if self.limit is None else min(self.limit, left))

    def ended(self, seconds: float, timed_out: bool) -> None:
        if not timed_out:
            self.longest = max(self.longest or 0.0, seconds)


def run_configs(
    script: str, specs: list[dict], timeout: float | None = None, threads: int | None = None, echo: bool = True,
    budget: Budget | None = None, after_each: Callable[[list[dict]], None] | None = None,
) -> list[dict]:
    """Run each spec in a fresh ``python SCRIPT --worker SPEC`` subprocess, one after another;
    returns each worker's result dict (or ``{"error": ...}`` with the end of its stderr; a spec
    the ``budget`` leaves no time for gets ``{"error": "skipped: ...", "skipped": True}``).
    ``after_each(results so far)`` runs after every configuration (the scripts rewrite their
    table and JSON there, so a session cut short keeps what finished)."""
    budget = budget or Budget(None, timeout)
    results = []
    for spec in specs:
        if threads:
            spec = {**spec, "threads": threads}
        refusal = budget.refusal()
        if refusal is not None:
            print(f"  {spec['label']} {refusal}", file=sys.stderr, flush=True)
            results.append({**spec, "error": refusal, "skipped": True})
        else:
            results.append(_run_one(script, spec, budget, echo))
        if after_each is not None:
            after_each(results)
    return results


def _run_one(script: str, spec: dict, budget: Budget, echo: bool) -> dict:
    """One configuration in its own subprocess, under the budget's time limit."""
    limit = budget.timeout()
    with tempfile.TemporaryDirectory(prefix="objlab-bench-") as folder:
        out = Path(folder) / "result.json"
        spec = {**spec, "out": str(out), "tmp": folder}
        if echo:
            print(f"  running {spec['label']} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        env = {**os.environ, "TRL_EXPERIMENTAL_SILENCE": "1", "TOKENIZERS_PARALLELISM": "false"}
        timed_out = False
        try:
            done = subprocess.run(
                [sys.executable, script, WORKER_FLAG, json.dumps(spec)],
                capture_output=True, text=True, timeout=limit, env=env,
            )
            failed = done.returncode != 0 or not out.is_file()
            error = (done.stderr or done.stdout)[-3000:] if failed else None
        except subprocess.TimeoutExpired:
            failed, timed_out, error = True, True, f"timed out after {limit:.0f} s"
        seconds = time.perf_counter() - started
        budget.ended(seconds, timed_out)
        if failed:
            result = {**spec, "error": error, "timed_out": timed_out}
            print(f"  {spec['label']} FAILED:\n{error}", file=sys.stderr, flush=True)
        else:
            result = {**spec, **json.loads(out.read_text())}
        result["process_seconds"] = round(seconds, 2)
        return result


def failure_label(result: dict) -> str:
    """What a table shows for a configuration with no figure: SKIPPED (no time left in the
    budget), TIMED OUT (stopped at its limit) or FAILED (see the JSON's ``error``)."""
    if result.get("skipped"):
        return "SKIPPED"
    return "TIMED OUT" if result.get("timed_out") else "FAILED"


def worker_entry(argv: list[str], worker: Callable[[dict], dict]) -> bool:
    """When the script was started as a worker: run ``worker(spec)``, write its result, return True."""
    if len(argv) < 3 or argv[1] != WORKER_FLAG:
        return False
    spec = json.loads(argv[2])
    if spec.get("threads"):
        import torch

        torch.set_num_threads(spec["threads"])
    result = worker(spec)
    Path(spec["out"]).write_text(json.dumps(result, default=str))
    return True


# -- output ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    key: str
    header: str
    fmt: Callable[[object], str] = str


def fmt_int(value) -> str:
    return "-" if value is None else f"{value:,.0f}"


def fmt_float(digits: int = 2) -> Callable[[object], str]:
    return lambda value: "-" if value is None else f"{value:,.{digits}f}"


def fmt_ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def fmt_percent(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def fmt_memory(value) -> str:
    """Bytes as MB below a GB, GB above."""
    if value is None:
        return "-"
    return f"{value / 2**30:.2f} GB" if value >= 2**30 else f"{value / 2**20:.0f} MB"


def markdown_table(columns: list[Column], rows: Iterable[dict]) -> str:
    lines = ["| " + " | ".join(column.header for column in columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column.key)
            cells.append("-" if value is None else (value if isinstance(value, str) else column.fmt(value)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratio(numerator, denominator) -> float | None:
    if numerator is None or denominator in (None, 0):
        return None
    return numerator / denominator


def render(title: str, columns: list[Column], rows: list[dict], notes: Iterable[str] = ()) -> str:
    """The one table as markdown: a title, the table and its notes."""
    notes = list(notes)
    if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
        warning = ("WARNING: OMP_WAIT_POLICY=PASSIVE was set: small matrix products (decoding, one-at-a-time loops) "
                   "run several times slower under it; these figures are not comparable.")
        notes = [warning, *notes]
    return f"### {title}\n\n{markdown_table(columns, rows)}\n\n" + "".join(f"- {note}\n" for note in notes)


def write_atomic(path: str | Path, text: str) -> None:
    """Replace ``path`` whole (a reader, or a lease that ends mid-write, never sees half a file)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(text)
    os.replace(partial, target)


def report(title: str, columns: list[Column], rows: list[dict], meta: dict, json_path: str | None, notes: list[str] = (),
           md_path: str | None = None, echo: bool = True) -> None:
    """Print the one table (with a title and short notes; not with ``echo`` False), write it to
    ``md_path`` and the rows as JSON to ``json_path``."""
    text = render(title, columns, rows, notes)
    if echo:
        print(text, end="")
    if md_path:
        write_atomic(md_path, text)
    if json_path:
        write_atomic(json_path, json.dumps({"title": title, "meta": meta, "rows": rows}, indent=2, default=str))
        if echo:
            print(f"- rows written to {json_path}")


def save_rates(path: str, kind: str, updates: dict) -> None:
    """Merge measured rates into a rates file keyed by machine kind (the format
    ``objlab run --plan`` reads estimates from); other kinds and fields are kept."""
    target = Path(path)
    rates = json.loads(target.read_text()) if target.is_file() and target.read_text().strip() else {}
    entry = {**rates.get(kind, {}), **updates}
    entry["measured"] = datetime.date.today().isoformat()
    rates[kind] = entry
    write_atomic(target, json.dumps(rates, indent=2, sort_keys=True) + "\n")


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1 (argparse names the option in its error)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def base_parser(description: str, device: bool = True, rates: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    if device:
        parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cpu or cuda (default cpu)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes to check the script works (not figures)")
    parser.add_argument("--only", default=None, help="comma-separated run labels (or prefixes; SHAPE/LABEL for one shape) to run")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the table's rows as JSON here")
    if rates:
        parser.add_argument("--save-rates", default=None, metavar="PATH",
                            help="merge measured rates into a rates file for `objlab run --plan` (e.g. src/objlab/runner/rates.json)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per configuration subprocess")
    parser.add_argument("--budget", type=float, default=None, metavar="S",
                        help="seconds for all configurations: one starts only if about as long as the longest so far is "
                             "left, and runs under --timeout or the time left (a short GPU lease; see benchmarks/README.md)")
    parser.add_argument("--md", dest="md_path", default=None, metavar="PATH",
                        help="also write the table with its notes here; with --json, both are rewritten after every configuration")
    parser.add_argument("--note", action="append", default=[], help="a line to add under the table (repeatable)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads in every run (default: torch's, one per core); 1 avoids thread "
                             "oversubscription stalls when other work shares the cores")
    return parser


def selected(specs: list[dict], only: str | None) -> list[dict]:
    """The specs whose label (or ``shape/label``) starts with one of ``only``'s comma-separated
    parts, in the order ``only`` names them (a session under a time budget runs what matters
    most first); specs one part selects keep their planned order."""
    if not only:
        return specs
    wanted = [part.strip() for part in only.split(",") if part.strip()]

    def names(spec: dict) -> list[str]:
        return [spec["label"], f"{spec.get('shape')}/{spec['label']}"]

    def rank(spec: dict) -> int | None:
        return next((index for index, w in enumerate(wanted) if any(name.startswith(w) for name in names(spec))), None)

    ranked = [(rank(spec), position) for position, spec in enumerate(specs)]
    return [specs[position] for index, position in sorted(r for r in ranked if r[0] is not None)]
