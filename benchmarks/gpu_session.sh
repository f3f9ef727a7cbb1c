#!/usr/bin/env bash
# One GPU session that fits a short lease: 8 minutes of wall time by construction.
#
#   OUT=/some/dir bash benchmarks/gpu_session.sh [--cpu-smoke] [PART ...]
#
# PART: any of e2e train-7b gen-7b (default: all three, in that order).
# - e2e: `objlab demo --size test` on the GPU (organism carried in .gpu-kit), then
#   benchmarks/e2e_check.py reads the run's store: the device of every stage of every cell,
#   the time per phase and the compact summary.
# - train-7b: objlab vs TRL's fastest plain setting (no checkpointing) for SFT, DPO, ORPO on the
#   Qwen2.5-7B shape, and the bf16 matmul peak for MFU.
# - gen-7b: objlab's default decoding vs HF generate with the compiled static cache and the
#   dynamic cache; persona scoring vs the one-item-at-a-time loop.
#
# Budgets: the set-up (installing the kit, the import check) and every part end at a deadline,
# each part's the previous one's plus its own budget, none later than SESSION_S after the
# start; time a part leaves unused passes to the next. Inside a part, a configuration starts
# only if about as long as the longest so far is left, and runs under its part's limit or the
# time left (benchmarks/common.py, Budget). Every table and JSON is rewritten after each
# configuration. Output: at most 8 files in $OUT: session.md (machine, versions, kit check, the
# budget table as it went), log.txt (the parts' output, trimmed), e2e.md, train-7b.{md,json},
# gen-7b.{md,json}, rates.json (measured rates for src/objlab/runner/rates.json).
#
# --cpu-smoke: every part on the CPU at the smallest shapes (the demo's test grid; llama-smoke,
# a few steps and prompts), same budget logic and files, budgets sized for 2 cores. In a Python
# without trl/peft/datasets/duckdb/pydantic (the GPU image) the kit's wheels are installed first,
# as on the machine. BUDGET_SCALE (default 1) multiplies every budget and limit (the CI test runs
# the smoke at a fraction); SESSION_S overrides the session's length. For a shorter check:
# E2E_CONFIG=config.yaml runs `objlab run` on that grid instead of the demo, TRAIN_ONLY and GEN_ONLY
# replace the 7B parts' --only lists (the configurations, in the order they run).
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder results go to}"
mkdir -p "$OUT"
mode=gpu
if [ "${1:-}" = --cpu-smoke ]; then mode=cpu-smoke; shift; fi
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(e2e train-7b gen-7b)
KIT=${KIT:-.gpu-kit}
PY=${PYTHON:-python3}
SCALE=${BUDGET_SCALE:-1}
MARGIN=5  # seconds a part keeps for its last table and exit
LOG="$OUT/log.txt"
SESSION="$OUT/session.md"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false TRL_EXPERIMENTAL_SILENCE=1
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1  # the lent machine reaches no hub: fail at once, never wait on a connection
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
[ -n "${DATA:-}" ] && export OBJLAB_SHARED_DATA="$DATA"  # a folder with gsm8k/ and persona/ (default: the kit's, else ../shared/data)
if [ -d "$KIT" ]; then  # the carried kit: organism, tokenizer and configs, data
  export OBJLAB_CACHE="${OBJLAB_CACHE:-$PWD/$KIT/cache}" OBJLAB_BENCH_CACHE="${OBJLAB_BENCH_CACHE:-$PWD/$KIT/bench}"
  [ -d "$KIT/data" ] && export OBJLAB_SHARED_DATA="${OBJLAB_SHARED_DATA:-$PWD/$KIT/data}"
fi

scaled() { awk -v s="$SCALE" -v x="$1" 'BEGIN { printf "%d", x * s }'; }

# Seconds: "budget limit-per-configuration" per part, for the GPU and for the CPU smoke on 2 cores.
budget_of() {
  if [ "$mode" = gpu ]; then
    case $1 in
      setup) echo "30 30" ;;
      e2e) echo "180 180" ;;
      train-7b) echo "150 75" ;;
      gen-7b) echo "120 90" ;;
    esac
  else
    case $1 in
      setup) echo "60 60" ;;
      e2e) echo "420 420" ;;
      train-7b) echo "180 60" ;;
      gen-7b) echo "120 60" ;;
    esac
  fi
}
SESSION_S=${SESSION_S:-$(scaled $([ "$mode" = gpu ] && echo 480 || echo 780))}

say() { echo "$*" | tee -a "$SESSION"; }
now() { date +%s; }
trim_log() { local kept; kept=$(mktemp); tail -c 300000 "$LOG" > "$kept"; cat "$kept" > "$LOG"; rm -f "$kept"; }

start=$(now)
session_end=$((start + SESSION_S))
: > "$SESSION"; : > "$LOG"
say "# objlab GPU session ($mode), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say ""
if [ "$mode" = gpu ]; then
  DEVICE=cuda
  say "- GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)"
else
  DEVICE=cpu
  say "- CPU smoke run ($(nproc) cores): checks the session end to end at the smallest shapes; no figure here is a measurement"
  # One torch thread per process: on 2 cores shared with other work, two threads stall on each
  # other (the demo's grid took 8x longer under another job's load with 2 threads than with 1).
  export CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
fi

# -- set-up: the kit's wheels where the machine lacks them, then the import check ----------------------
read -r setup_s _ <<< "$(budget_of setup)"
deadline=$((start + $(scaled "$setup_s")))
site="${TMPDIR:-/tmp}/objlab-kit-site"
carried=()  # the kit_check.py argument naming the installed kit, when this session installed it
if ! timeout 60 "$PY" -c "import trl, peft, datasets, duckdb, pydantic" 2>/dev/null; then
  if [ -d "$KIT/wheels" ]; then
    installing=$(now)
    rm -rf "$site"
    timeout 60 "$PY" -m pip install --quiet --no-index --no-deps --no-compile --target "$site" "$KIT"/wheels/*.whl >> "$LOG" 2>&1 \
      || timeout 60 "$PY" - "$site" "$KIT"/wheels/*.whl <<'EOF'  # no pip in the image: a wheel is a zip file
import sys, zipfile
for wheel in sys.argv[2:]:
    zipfile.ZipFile(wheel).extractall(sys.argv[1])
EOF
    export PYTHONPATH="$PYTHONPATH:$site"
    carried=(--site "$site")
    say "- kit: $(ls "$KIT"/wheels/*.whl | wc -l) wheels installed into $site in $(( $(now) - installing )) s"
  else
    say "- kit: trl, peft, datasets, duckdb or pydantic missing and no $KIT/wheels (run benchmarks/gpu_kit.sh, carry $KIT)"
  fi
fi
timeout 120 "$PY" benchmarks/kit_check.py ${carried[@]+"${carried[@]}"} 2>>"$LOG" | sed 's/^/- /' | tee -a "$SESSION"
say ""
say "| part | budget s | limit per configuration s | started at s | used s | outcome |"
say "| --- | --- | --- | --- | --- | --- |"

# -- the parts ------------------------------------------------------------------------------------
outcome_of() {  # finished / failed / skipped configurations, from a part's JSON
  "$PY" - "$1" <<'EOF' 2>/dev/null || echo "no table written"
import json, sys
runs = json.load(open(sys.argv[1]))["meta"]["runs"]
skipped = sum(1 for r in runs if r.get("skipped"))
failed = sum(1 for r in runs if "error" in r and not r.get("skipped"))
print(f"{len(runs) - failed - skipped} finished, {failed} failed, {skipped} skipped")
EOF
}

run_e2e() {
  local left=$1 run_dir demo_s check_s rc started
  run_dir="$(mktemp -d)/demo"
  check_s=$(scaled 30); [ "$check_s" -lt 20 ] && check_s=20  # the store check and the compact summary
  demo_s=$((left - check_s - 15))  # 15: the grace periods of the two timeouts
  [ "$demo_s" -lt 10 ] && { echo "skipped: ${left} s left"; return; }
  started=$(now)
  local grid=(demo --size test)
  [ -n "${E2E_CONFIG:-}" ] && grid=(run "$E2E_CONFIG")
  timeout --kill-after=10 "$demo_s" "$PY" -m objlab "${grid[@]}" --out "$run_dir" >> "$LOG" 2>&1
  rc=$?
  local ran="objlab ${grid[*]}: $([ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "stopped at the part's budget" || echo "exit status $rc") after $(( $(now) - started )) s (limit ${demo_s} s)"
  timeout --kill-after=5 "$check_s" "$PY" benchmarks/e2e_check.py "$run_dir" --device "$DEVICE" --md "$OUT/e2e.md" --note "$ran" >> "$LOG" 2>&1
  head -3 "$OUT/e2e.md" 2>/dev/null | tail -1 || echo "the check wrote nothing"
}

run_bench() {  # PART LEFT LIMIT SCRIPT ARGS...: one benchmark script under the part's budget
  local part=$1 left=$2 limit=$3 script=$4; shift 4
  timeout --kill-after=5 $((left + MARGIN)) "$PY" "$script" "$@" --device "$DEVICE" --timeout "$limit" --budget "$left" \
    --json "$OUT/$part.json" --md "$OUT/$part.md" --save-rates "$OUT/rates.json" ${smoke_note[@]+"${smoke_note[@]}"} >> "$LOG" 2>&1
  outcome_of "$OUT/$part.json"
}

TRAIN_ONLY=${TRAIN_ONLY:-peak,objlab:sft,trl:sft:off,objlab:dpo,trl:dpo:off,objlab:orpo,trl:orpo:off}
GEN_ONLY=${GEN_ONLY:-objlab,hf-static,persona-objlab,persona-loop,hf-dynamic}
smoke_note=()
if [ "$mode" = gpu ]; then
  train_args=(--shape qwen2.5-7b)
  gen_args=(--shape qwen2.5-7b --prompts 128 --new-tokens 128 --persona-items 256)
else
  smoke_note=(--threads 1 --note "CPU smoke run (llama-smoke shape, a few steps and prompts): checks the session works; not a figure.")
  train_args=(--shape llama-smoke --batch 2 --warmup 1 --steps 2 --peak-size 256)
  gen_args=(--shape llama-smoke --prompts 4 --new-tokens 4 --persona-items 6)
fi

for part in "${parts[@]}"; do
  read -r budget limit <<< "$(budget_of "$part")"
  if [ -z "${budget:-}" ]; then say "| $part | - | - | - | - | unknown part (known: e2e train-7b gen-7b) |"; continue; fi
  budget=$(scaled "$budget"); limit=$(scaled "$limit")
  deadline=$((deadline + budget)); [ "$deadline" -gt "$session_end" ] && deadline=$session_end
  began=$(now)
  left=$((deadline - began - MARGIN))
  echo "== $part: ${left} s ($(date +%T))" >> "$LOG"
  if [ "$left" -le 0 ]; then say "| $part | $budget | $limit | $((began - start)) | 0 | skipped: the session's time is spent |"; continue; fi
  case $part in
    e2e) outcome=$(run_e2e "$left") ;;
    train-7b) outcome=$(run_bench "$part" "$left" "$limit" benchmarks/train_vs_trl.py "${train_args[@]}" --only "$TRAIN_ONLY") ;;
    gen-7b) outcome=$(run_bench "$part" "$left" "$limit" benchmarks/generation.py "${gen_args[@]}" --only "$GEN_ONLY") ;;
  esac
  say "| $part | $budget (to $((deadline - start)) s) | $limit | $((began - start)) | $(( $(now) - began )) | ${outcome//|//} |"
  trim_log
done
say ""
say "- session: $(( $(now) - start )) s of ${SESSION_S} s; files: $(ls "$OUT" | tr '\n' ' ')"
