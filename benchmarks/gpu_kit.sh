#!/usr/bin/env bash
# Assemble, in .gpu-kit/ (git-ignored), what a lent GPU machine lacks for benchmarks/gpu_session.sh:
#
#   bash benchmarks/gpu_kit.sh [--check PYTHON]
#
# - wheels/  the packages its image does not have (torch, transformers, accelerate, numpy, pandas,
#            scipy, statsmodels, matplotlib, pyarrow, typer and rich it has), for CPython 3.12 on
#            manylinux x86_64; the session installs them with `pip install --no-index --no-deps --target`;
# - cache/   the test-size demo organism (objlab.organism.build, minutes to build on a CPU, so built
#            here, never on the lease), laid out as $OBJLAB_CACHE/organism/<recipe hash>;
# - bench/   the benchmarks' tokenizer and the model configs of the shapes a session runs ($OBJLAB_BENCH_CACHE);
# - data/    the GSM8K and persona files the benchmarks read (the machine has no ../shared/data).
#
# Then it checks the kit's size against the device tool's 64 MiB carry limit and, with --check
# PYTHON (a Python 3.12 environment with the image's versions), installs the wheels into a
# scratch folder and runs benchmarks/kit_check.py there: the import check against the carried set.
# The organism, tokenizer and configs are built with the Python on PATH (the project's environment).
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=.gpu-kit
CARRY_LIMIT_MIB=64
check_python=""
[ "${1:-}" = --check ] && check_python=${2:?--check needs a python executable}

# Pinned: the versions objlab is tested with, except datasets 4.8 (5.x needs huggingface-hub >= 1.31,
# newer than transformers 5.17's image may hold; 4.8 takes any hub below 2) and fsspec within
# datasets 4.8's bound. requests: datasets needs it and huggingface-hub 1.x no longer brings it
# (found by the import check). typing-extensions: pydantic 2.14 needs >= 4.16, newer than torch requires.
WHEELS=(
  trl==1.16.0 peft==0.21.2
  datasets==4.8.5 dill==0.4.1 multiprocess==0.70.19 xxhash==4.1.0 fsspec==2026.2.0
  requests==2.34.2 urllib3==2.8.0 charset-normalizer==3.5.3
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0
  duckdb==2.0.1
)

mkdir -p "$KIT"
echo "== wheels ($(date +%T))"
rm -rf "$KIT/wheels"
pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$KIT/wheels" "${WHEELS[@]}"

echo "== organism, tokenizer, configs, data ($(date +%T))"
rm -rf "$KIT/data" && mkdir -p "$KIT/data/gsm8k" "$KIT/data/persona"
SHARED=${OBJLAB_SHARED_DATA:-../shared/data}
cp "$SHARED/gsm8k/train_first1000.jsonl" "$SHARED/gsm8k/LICENSE" "$KIT/data/gsm8k/"
cp "$SHARED"/persona/{machiavellianism,narcissism,psychopathy}.jsonl "$SHARED/persona/LICENSE" "$KIT/data/persona/"
OBJLAB_SHARED_DATA="$KIT/data" OBJLAB_BENCH_CACHE="$KIT/bench" PYTHONPATH="src:benchmarks${PYTHONPATH:+:$PYTHONPATH}" python - <<'EOF'
"""Build (or find) the test organism and the benchmark tokenizer and configs; drop stale builds."""
import shutil
from pathlib import Path

import common
from objlab.organism.build import build_organism

organism = build_organism("test", cache_dir=Path(".gpu-kit/cache/organism"))
for stale in organism.root.parent.iterdir():
    if stale != organism.root:
        shutil.rmtree(stale)
for shape in ("qwen2.5-7b", "qwen2.5-0.5b", "llama-smoke"):  # the session's shapes (llama-smoke: --cpu-smoke)
    common.model_dir(shape)
print(f"organism {organism.root}")
EOF

size_kib=$(du -sk "$KIT" | cut -f1)
du -sh "$KIT"/* | sed 's/^/  /'
echo "kit: $((size_kib / 1024)) MiB of the ${CARRY_LIMIT_MIB} MiB carry limit"
[ "$size_kib" -lt $((CARRY_LIMIT_MIB * 1024)) ] || { echo "the kit is over the carry limit" >&2; exit 1; }

if [ -n "$check_python" ]; then
  echo "== import check with $check_python ($(date +%T))"
  site=$(mktemp -d)
  "$check_python" -m pip install --quiet --no-index --no-deps --no-compile --target "$site" "$KIT"/wheels/*.whl
  PYTHONPATH="src:$site" TRL_EXPERIMENTAL_SILENCE=1 "$check_python" benchmarks/kit_check.py --site "$site"
  rm -rf "$site"
fi
echo "carry: [\"$KIT\"]   (one call: OUT=\$OUT bash benchmarks/gpu_session.sh; see benchmarks/README.md)"
