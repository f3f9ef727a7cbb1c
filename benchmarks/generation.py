"""Evaluation throughput: objlab's generation backend and persona scoring against plain
Hugging Face paths.

Compared, each configuration in its own subprocess, on the same model (same shape, same random
weights) and the same inputs:

- greedy decoding of N GSM8K prompts (512 on GPU, 64 on CPU, 16 for the Qwen2.5-0.5B shape on
  CPU; ``--prompts``) rendered with the chat template, ``--new-tokens`` new tokens each (256 GPU,
  32 CPU, 16 for the 0.5B shape on CPU):
  - Hugging Face ``generate``, batch 64, default dynamic cache, prompts in input order;
  - Hugging Face ``generate`` with ``cache_implementation="static"``, batch 64 (on a GPU
    transformers compiles the decoding step); every prompt is left-padded to the longest prompt's
    width so the compiled step sees one shape (the reference at its best, not recompiling);
  - objlab's default backend (``EvalSession.generate``: ``hf`` on CPU, ``hf-static`` on GPU,
    ``vllm`` when installed), choosing its own batching (``batch_size: auto``).
  Tokens/s counts generated tokens up to the first end-of-sequence token (padding after it is
  not counted), the same rule for all three, over the whole prompt set, after a warm-up on one
  batch of every shape the timed run uses (so no compilation falls inside the window; objlab:
  ``EvalSession.warm_up``).
- persona scoring (P(match) needs log p of both answers of each statement): objlab's
  ``answer_logprobs`` (shared prompt, log-probs at answer positions only, batched) against a
  one-item-at-a-time loop that forwards prompt + answer for each answer with full logits.
  Items/s over the same statements (from the shared persona data), tokenisation included on
  both sides, each side timed on 3 passes over them after an untimed one (which meets every
  shape the timed passes do, as a grid scoring the same statements for every adapter does),
  the rate from the median pass; the JSON records every pass and the largest log-prob
  difference between the two sides.

Random weights rarely emit end-of-sequence, so every sequence runs to ``--new-tokens``: this
measures decoding throughput, not the saving of sequences that stop early.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import common
from common import Column

REFERENCE_BATCH = 64
PERSONA_PASSES = 3
# The real-size shape on CPU (Qwen2.5-0.5B, fp32): a decoding step reads 2 GB of weights, so a
# smaller set of prompts and statements.
CPU_REAL_SIZE = {"prompts": 16, "new_tokens": 16, "items": 48}


def setup_worker(spec: dict):
    import torch  # noqa: F401
    import transformers

    transformers.logging.set_verbosity_error()
    tokenizer = common.load_tokenizer()
    memory = common.PeakMemory(spec["device"])
    model = common.build_model(spec["shape"], spec["device"], spec["dtype"], tokenizer=tokenizer)
    model.eval()
    return tokenizer, memory, model


def encoded_prompts(tokenizer, count: int) -> list[list[int]]:
    from objlab.data.chat import ChatEncoder

    encoder = ChatEncoder(tokenizer, 1024)
    return [encoder.encode_prompt(row["question"].strip()) for row in common.gsm8k_rows(count)]


def until_eos(row: list[int], eos: set[int]) -> int:
    """Generated tokens before the first end-of-sequence token (objlab's ``new_tokens`` rule)."""
    return next((position for position, token in enumerate(row) if token in eos), len(row))


# -- workers ----------------------------------------------------------------------------------------
def hf_worker(spec: dict) -> dict:
    """Plain batched ``generate``: batches of 64 in input order, dynamic or static cache."""
    import time

    import torch

    from objlab.lm.decode import eos_token_ids

    tokenizer, memory, model = setup_worker(spec)
    device, new_tokens, static = spec["device"], spec["new_tokens"], spec["run"] == "hf-static"
    started = time.perf_counter()
    prompts = encoded_prompts(tokenizer, spec["prompts"])
    eos, pad = eos_token_ids(model, tokenizer), tokenizer.pad_token_id
    global_width = max(map(len, prompts))

    @torch.no_grad()
    def run(batch: list[list[int]]) -> int:
        width = global_width if static else max(map(len, batch))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in batch], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device=device)
        extra = {"cache_implementation": "static"} if static else {}
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False, pad_token_id=pad, **extra)
        return sum(until_eos(row, eos) for row in out[:, width:].tolist())

    batches = [prompts[start : start + REFERENCE_BATCH] for start in range(0, len(prompts), REFERENCE_BATCH)]
    for batch in {len(batch): batch for batch in batches}.values():  # warm-up: every shape the timed run uses (compiled on GPU)
        run(batch)
    window = common.Window(device)
    window.start()
    tokens = sum(run(batch) for batch in batches)
    window.stop()
    return {"setup_s": window.started - started, "window_s": window.seconds, "count": tokens, "unit": "tokens/s",
            "batching": f"{REFERENCE_BATCH}", "peak_bytes": memory.peak_bytes(), "memory_method": memory.method,
            "environment": common.environment(device)}


def objlab_worker(spec: dict) -> dict:
    """objlab's evaluation session with its default backend and automatic batch size."""
    import time

    from objlab.config import ExperimentConfig
    from objlab.lm import generation
    from objlab.lm.generation import GenerationRequest
    from objlab.evaluate.session import EvalSession

    tokenizer, memory, model = setup_worker(spec)
    device, new_tokens = spec["device"], spec["new_tokens"]
    sizes: list[int] = []
    original = generation.HFGenerator._generate_batch

    def recorded(self, batch, rows_done=None):  # records the batch sizes objlab chose (no effect on decoding)
        sizes.append(len(batch))
        return original(self, batch, rows_done)

    generation.HFGenerator._generate_batch = recorded
    try:
        started = time.perf_counter()
        config = ExperimentConfig.model_validate(
            {
                "model": {"name_or_path": spec["model_dir"], "dtype": spec["dtype"]},
                "data": {"source": str(common.GSM8K)},
                "eval": {"generation": {"backend": "auto", "batch_size": "auto", "max_new_tokens": new_tokens}},
            }
        )
        session = EvalSession(config, common.bundle_for(model, tokenizer, device, Path(spec["model_dir"]), spec["dtype"]))
        requests = [GenerationRequest(tuple(ids), max_new_tokens=new_tokens) for ids in encoded_prompts(tokenizer, spec["prompts"])]
        warmed = session.warm_up(requests)  # one batch of every shape the timed run uses (hf-static compiles them on GPU)
        sizes.clear()
        window = common.Window(device)
        window.start()
        outputs = session.generate(requests)
        window.stop()
    finally:
        generation.HFGenerator._generate_batch = original
    batching = f"{session.backend_name}, auto: {max(sizes) if sizes else '?'}" + (f" ({len(sizes)} batches)" if sizes else "")
    return {"setup_s": window.started - started, "window_s": window.seconds, "count": sum(o.new_tokens for o in outputs),
            "unit": "tokens/s", "batching": batching, "batch_sizes": sizes, "backend": session.backend_name, "warm_up_batches": warmed,
            "peak_bytes": memory.peak_bytes(), "memory_method": memory.method, "environment": common.environment(device)}


def timed_passes(device: str, score, items, started: float) -> tuple[float, list[float], list]:
    """Persona scoring's timing, the same for both sides: one untimed pass over the items
    (meeting every shape of the timed ones), then ``PERSONA_PASSES`` timed passes; returns the
    set-up seconds (to the first timed pass), each pass's seconds (the rate uses their median:
    a pass of objlab's takes under a second, where one disturbance on a shared machine shows)
    and the last pass's log-probs."""
    score(items)
    seconds, setup_s = [], None
    for _ in range(PERSONA_PASSES):
        window = common.Window(device)
        window.start()
        setup_s = window.started - started if setup_s is None else setup_s
        pairs = score(items)
        window.stop()
        seconds.append(window.seconds)
    return setup_s, seconds, pairs


def persona_objlab_worker(spec: dict) -> dict:
    """objlab's persona scoring: prompt shared by both answers, answer positions only, batched."""
    import time

    from objlab.data.chat import ChatEncoder
    from objlab.evaluate.axes import persona
    from objlab.lm.logits import LogitHead

    tokenizer, memory, model = setup_worker(spec)
    device = spec["device"]
    batch_size = persona.GPU_BATCH_SIZE if device != "cpu" else persona.CPU_BATCH_SIZE
    started = time.perf_counter()
    items = common.persona_items(spec["items"])
    head = LogitHead.from_model(model)

    def score(chosen) -> list[tuple[float, float]]:
        encoder = ChatEncoder(tokenizer, 1024)
        choices = persona.encode_choices(encoder, [(item.question, item.matching, item.not_matching) for item in chosen])
        return persona.answer_logprobs(model, head, choices, tokenizer.pad_token_id, batch_size)

    setup_s, seconds, pairs = timed_passes(device, score, items, started)
    return {"setup_s": setup_s, "window_s": statistics.median(seconds), "pass_s": seconds, "count": len(items), "unit": "items/s",
            "batching": f"{batch_size}", "logprobs": pairs, "peak_bytes": memory.peak_bytes(), "memory_method": memory.method,
            "environment": common.environment(device)}


def persona_loop_worker(spec: dict) -> dict:
    """The straightforward way: per item, per answer, forward prompt + answer, full logits."""
    import time

    import torch

    from objlab.data.chat import ChatEncoder

    tokenizer, memory, model = setup_worker(spec)
    device = spec["device"]
    started = time.perf_counter()
    items = common.persona_items(spec["items"])

    @torch.no_grad()
    def answer_logprob(encoder, question: str, answer: str) -> float:
        prompt = encoder.encode_prompt(question)
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt + answer_ids], device=device)
        logps = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
        targets = ids[0, 1:]
        token_logps = logps.gather(1, targets[:, None]).squeeze(1)
        return float(token_logps[len(prompt) - 1 :].sum())

    def score(chosen) -> list[tuple[float, float]]:
        encoder = ChatEncoder(tokenizer, 1024)
        return [(answer_logprob(encoder, i.question, i.matching), answer_logprob(encoder, i.question, i.not_matching)) for i in chosen]

    setup_s, seconds, pairs = timed_passes(device, score, items, started)
    return {"setup_s": setup_s, "window_s": statistics.median(seconds), "pass_s": seconds, "count": len(items), "unit": "items/s",
            "batching": "1", "logprobs": pairs, "peak_bytes": memory.peak_bytes(), "memory_method": memory.method,
            "environment": common.environment(device)}


WORKERS = {
    "hf-dynamic": hf_worker,
    "hf-static": hf_worker,
    "objlab": objlab_worker,
    "persona-loop": persona_loop_worker,
    "persona-objlab": persona_objlab_worker,
}
DESCRIPTIONS = {
    "hf-dynamic": ("generation", "HF generate, dynamic cache"),
    "hf-static": ("generation", 'HF generate, cache_implementation="static"'),
    "objlab": ("generation", "objlab default backend"),
    "persona-loop": ("persona scoring", "one item at a time, full forward per answer"),
    "persona-objlab": ("persona scoring", "objlab answer_logprobs"),
}


RATES = {"objlab": "generate_tokens_per_s", "persona-objlab": "score_items_per_s"}  # what `run --plan` reads, from which run


def worker(spec: dict) -> dict:
    return WORKERS[spec["run"]](spec)


# -- the parent ---------------------------------------------------------------------------------------
def run_sizes(args, shape_name: str) -> dict:
    """Prompts, new tokens and persona items for a shape: GPU 512 / 256 / 512, CPU 64 / 32 / 192,
    the real-size shape on CPU ``CPU_REAL_SIZE``; ``--quick`` 8 / 4 / 12."""
    if args.quick:
        return {"prompts": 8, "new_tokens": 4, "items": 12}
    if args.device != "cpu":
        defaults = {"prompts": 512, "new_tokens": 256, "items": 512}
    else:
        defaults = CPU_REAL_SIZE if common.is_real_size(shape_name) else {"prompts": 64, "new_tokens": 32, "items": 192}
    return {"prompts": args.prompts or defaults["prompts"], "new_tokens": args.new_tokens or defaults["new_tokens"],
            "items": args.persona_items or defaults["items"]}


def plan_specs(args) -> list[dict]:
    specs = []
    for shape in args.shapes:
        base = {"device": args.device, "dtype": common.default_dtype(args.device), "shape": shape,
                "model_dir": str(common.model_dir(shape)), **run_sizes(args, shape)}
        specs += [{**base, "run": run, "label": run} for run in WORKERS]
    return specs


def table_rows(results: list[dict]) -> list[dict]:
    for result in results:
        if "error" not in result:
            result["rate"] = result["count"] / result["window_s"]
    rate = {(r["shape"], r["run"]): r.get("rate") for r in results}
    peak = {(r["shape"], r["run"]): r.get("peak_bytes") for r in results}
    rows = []
    for result in results:
        axis, name = DESCRIPTIONS[result["run"]]
        mine = (result["shape"], "objlab" if axis == "generation" else "persona-objlab")
        row = {"shape": result["shape"], "axis": axis, "run": name}
        if "error" in result:
            rows.append({**row, "rate": common.failure_label(result)})
            continue
        rows.append(
            {
                **row,
                "batching": result["batching"],
                "rate": result["rate"],
                "unit": result["unit"],
                "peak_bytes": result["peak_bytes"],
                "setup_s": result["setup_s"],
                "speed_ratio": common.ratio(rate.get(mine), result["rate"]),
                "memory_ratio": common.ratio(peak.get(mine), result["peak_bytes"]),
            }
        )
    return rows


COLUMNS = [
    Column("shape", "shape"),
    Column("axis", "task"),
    Column("run", "run"),
    Column("batching", "batch"),
    Column("rate", "throughput", common.fmt_int),
    Column("unit", "unit"),
    Column("peak_bytes", "peak memory", common.fmt_memory),
    Column("setup_s", "set-up s", common.fmt_float(1)),
    Column("speed_ratio", "objlab/this throughput", common.fmt_ratio),
    Column("memory_ratio", "objlab/this memory", common.fmt_ratio),
]


def spread(run: dict) -> str:
    """The fastest and slowest of a run's timed passes."""
    return f"{min(run['pass_s']):.2f}-{max(run['pass_s']):.2f} s"


def notes(results: list[dict], args) -> list[str]:
    out = []
    if args.quick:
        out.append("QUICK RUN (8 prompts, 4 new tokens, 12 persona items): checks that the script works; not a figure.")
    for shape in dict.fromkeys(r["shape"] for r in results):
        done = {r["run"]: r for r in results if "error" not in r and r["shape"] == shape}
        any_result = next(iter(done.values()), None)
        if any_result:
            out.append(f"{shape}, {any_result['dtype']}; {any_result['prompts']} GSM8K prompts, greedy, "
                       f"{any_result['new_tokens']} new tokens; {any_result['items']} persona statements; "
                       f"peak memory: {any_result['memory_method']}.")
        if "objlab" in done and "hf-dynamic" in done and "hf-static" in done:
            out.append(f"{shape} generation: objlab {done['objlab']['rate'] / done['hf-dynamic']['rate']:.2f}x HF generate (dynamic), "
                       f"{done['objlab']['rate'] / done['hf-static']['rate']:.2f}x static cache; each warmed up on every batch shape "
                       f"of its timed run (objlab: {done['objlab'].get('warm_up_batches', '?')} batch(es)).")
        if "persona-loop" in done and "persona-objlab" in done:
            pairs = zip(done["persona-loop"]["logprobs"], done["persona-objlab"]["logprobs"])
            differences = [abs(a - b) for x, y in pairs for a, b in zip(x, y)]
            ours, loop = done["persona-objlab"], done["persona-loop"]
            out.append(f"{shape} persona scoring: objlab {ours['rate'] / loop['rate']:.1f}x the one-at-a-time loop (goal 10x; "
                       f"median of {len(ours['pass_s'])} passes each, objlab {spread(ours)}, the loop {spread(loop)}); "
                       f"log-probs, objlab vs the loop: largest difference {max(differences):.2e}.")
    return out


def main() -> None:
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default=None, help="model shape(s), comma-separated (default: llama-tiny,qwen2.5-0.5b on CPU, "
                        f"qwen2.5-0.5b on GPU; known: {', '.join(sorted(common.SHAPES))})")
    parser.add_argument("--prompts", type=int, default=None, help="GSM8K prompts to decode (default 64 CPU, 512 GPU, 16 qwen2.5-0.5b on CPU)")
    parser.add_argument("--new-tokens", type=int, default=None, help="new tokens per prompt (default 32 CPU, 256 GPU, 16 qwen2.5-0.5b on CPU)")
    parser.add_argument("--persona-items", type=int, default=None, help="persona statements to score (default 192 CPU, 512 GPU, 48 qwen2.5-0.5b on CPU)")
    args = parser.parse_args()
    args.shapes = common.shape_list(args.shape, args.device)
    publish = lambda results, echo=False: report(results, args, echo)  # noqa: E731
    results = common.run_configs(__file__, common.selected(plan_specs(args), args.only), threads=args.threads,
                                 budget=common.Budget(args.budget, args.timeout), after_each=publish)
    publish(results, echo=True)


def report(results: list[dict], args, echo: bool) -> None:
    """The table, its notes, the JSON and the rates of the configurations run so far (rewritten
    after each one, so a session cut short keeps what finished)."""
    rows = table_rows(results)
    environment = next((r["environment"] for r in results if "environment" in r), {"device": args.device})
    lines = [*notes(results, args), *args.note]
    runs = [{key: value for key, value in result.items() if key != "logprobs"} for result in results]  # compared in the notes; too long for the JSON
    meta = {"environment": environment, "args": vars(args), "runs": runs}
    title = f"Evaluation: objlab vs Hugging Face generate on {environment['device']}"
    common.report(title, COLUMNS, rows, meta, args.json_path, lines, md_path=args.md_path, echo=echo)
    done = {r["run"]: r for r in results if "error" not in r and r["shape"] == args.shapes[0]}  # rates: the first shape's
    rates = {field: done[run]["rate"] for run, field in RATES.items() if run in done}
    if args.save_rates and not args.quick and rates:
        common.save_rates(args.save_rates, environment["machine_kind"], rates)


if __name__ == "__main__":
    if not common.worker_entry(sys.argv, worker):
        main()
