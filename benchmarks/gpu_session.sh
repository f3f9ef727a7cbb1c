#!/usr/bin/env bash
# One GPU benchmark session, in priority order, for a short lease on a lent GPU machine.
#
#   OUT=/some/dir DATA=path/with/gsm8k+persona bash benchmarks/gpu_session.sh [PART ...]
#
# PART is any of: train-7b gen-05b train-05b gen-7b (default: all four, in that order).
# Every script writes its table to $OUT/<part>.md and its rows to $OUT/<part>.json as it
# finishes, and the measured rates go to $OUT/rates-<part>.json (merge them into
# src/objlab/runner/rates.json), so a lease that ends early still returns what was done.
# Each configuration gets its own time limit (PER_CONFIG seconds, default 150).
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder results go to}"
export OBJLAB_SHARED_DATA="${DATA:-../shared/data}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
PER_CONFIG="${PER_CONFIG:-150}"
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(train-7b gen-05b train-05b gen-7b)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, peft, trl; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'trl', trl.__version__)" | tee -a "$OUT/gpu.txt"

run_part() {
  local part=$1; shift
  echo "== $part: $* ($(date +%T))" | tee -a "$OUT/gpu.txt"
  python3 "$@" --device cuda --timeout "$PER_CONFIG" --json "$OUT/$part.json" --save-rates "$OUT/rates-$part.json" \
    > "$OUT/$part.md" 2> >(tail -c 20000 > "$OUT/$part.err")
}

for part in "${parts[@]}"; do
  case $part in
    # SFT, DPO, ORPO against TRL (its fastest plain setting; SFT also with TRL's defaults) on the 7B shape.
    train-7b) run_part "$part" benchmarks/train_vs_trl.py --shape qwen2.5-7b --only peak,objlab:sft,trl:sft,objlab:dpo,trl:dpo:off,objlab:orpo,trl:orpo:off ;;
    train-05b) run_part "$part" benchmarks/train_vs_trl.py --shape qwen2.5-0.5b ;;
    gen-05b) run_part "$part" benchmarks/generation.py --shape qwen2.5-0.5b --prompts 256 --new-tokens 256 --persona-items 512 ;;
    gen-7b) run_part "$part" benchmarks/generation.py --shape qwen2.5-7b --prompts 128 --new-tokens 128 --persona-items 256 ;;
    *) echo "unknown part $part" >&2 ;;
  esac
done
echo "== done $(date +%T)" | tee -a "$OUT/gpu.txt"
