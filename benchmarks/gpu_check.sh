#!/usr/bin/env bash
# GPU check (issue 13): one script, at most ~8 minutes on one GPU, that
#   1. runs the CUDA-marked tests (pytest -m cuda),
#   2. runs the scoring benchmark at n = 100,000, d = 768 with --device cuda
#      (target: exact all-anchors CorrEmbed, the "exact" column, <= 2 s),
#   3. runs the embedding benchmark in bf16 at batch 128 (forward-only bound, end-to-end,
#      decode-only; target: end-to-end >= 85 % of forward-only),
# and writes every figure to $OUT/gpu_check.md (raw logs beside it). $OUT defaults to
# ./gpu-check-out. Each step has its own time limit; a failing step is recorded and the next runs.
#
# Usage:
#   benchmarks/gpu_check.sh              # on the GPU machine
#   benchmarks/gpu_check.sh --dry-run    # print the commands only
#   benchmarks/gpu_check.sh --cpu-smoke  # the same commands at tiny sizes on the CPU (torch-cpu),
#                                        # to check the flags and the report without a GPU
# Environment: OUT (output folder), PYTHON (interpreter; default .venv/bin/python, else python3).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODE="gpu"
case "${1:-}" in
  --dry-run) MODE="dry" ;;
  --cpu-smoke) MODE="cpu" ;;
  "") ;;
  *) echo "usage: $0 [--dry-run|--cpu-smoke]" >&2; exit 2 ;;
esac

OUT="${OUT:-$REPO/gpu-check-out}"
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x "$REPO/.venv/bin/python" ]; then PY="$REPO/.venv/bin/python"
else PY="$(command -v python3)"; fi
export PYTHONPATH="$REPO/workflow${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore}"
mkdir -p "$OUT"
REPORT="$OUT/gpu_check.md"
cd "$REPO" || exit 1

# The embedding benchmark reads the real images from ../shared/data/fashion-product-224 (beside
# the checkout); a checkout that carries shared/ inside gets a link there.
if [ ! -d "$REPO/../shared/data/fashion-product-224" ] && [ -d "$REPO/shared/data/fashion-product-224" ] \
   && [ ! -e "$REPO/../shared" ] && [ "$MODE" != "dry" ]; then
  ln -s "$REPO/shared" "$REPO/../shared" || echo "warning: could not link ../shared" >&2
fi

if [ "$MODE" = "cpu" ]; then
  DEVICE="torch-cpu"; EMBED_DEVICE="cpu"; EMBED_PRECISION="fp32"
  SCORE_N=3000; EMBED_IMAGES=8; EMBED_BATCH=4; EMBED_WORKERS=1; EMBED_REPEATS=1; ARCHS="resnet18"
  TEST_FILTER=(-m "cuda" --co)  # collect only: the CUDA tests skip without a GPU
else
  DEVICE="cuda"; EMBED_DEVICE="cuda"; EMBED_PRECISION="bf16"
  SCORE_N=100000; EMBED_IMAGES=1024; EMBED_BATCH=128; EMBED_WORKERS=8; EMBED_REPEATS=2; ARCHS="resnet50,vit_b_16"
  TEST_FILTER=(-m "cuda")
fi

STEPS_OK=0
STEPS_FAILED=0

# step NAME LIMIT_S COMMAND...: run with a time limit, log to $OUT/NAME.log, append to the report.
step() {
  local name="$1" limit="$2"; shift 2
  local log="$OUT/$name.log"
  echo "## $name" >> "$REPORT"
  echo '```' >> "$REPORT"
  echo "\$ $(printf '%q ' "$@")" >> "$REPORT"
  if [ "$MODE" = "dry" ]; then
    printf '%q ' "$@"; echo
    echo '```' >> "$REPORT"; echo >> "$REPORT"
    return 0
  fi
  local start end rc
  start=$(date +%s)
  timeout --signal=INT --kill-after=15 "$limit" "$@" > "$log" 2>&1
  rc=$?
  end=$(date +%s)
  tail -n 40 "$log" >> "$REPORT"
  echo '```' >> "$REPORT"
  echo "exit status $rc after $((end - start)) s (limit $limit s)" >> "$REPORT"
  echo >> "$REPORT"
  if [ "$rc" -eq 0 ]; then STEPS_OK=$((STEPS_OK + 1)); else STEPS_FAILED=$((STEPS_FAILED + 1)); fi
  echo "$name: exit $rc in $((end - start)) s" >&2
}

{
  echo "# GPU check ($MODE) $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo '```'
  if [ "$MODE" != "dry" ]; then
    if command -v nvidia-smi > /dev/null; then
      nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
    else
      echo "nvidia-smi not available"
    fi
    "$PY" -c 'import torch, numpy; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), "|", torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU", "| numpy", numpy.__version__)' 2>&1
    git -C "$REPO" log -1 --format='commit %H %s' 2>/dev/null || true
  fi
  echo '```'
  echo
} > "$REPORT"

# 1. CUDA-marked tests (the scoring backend on the GPU, bf16/fp16 embedding precision).
step cuda_tests 150 "$PY" -m pytest "${TEST_FILTER[@]}" -q -p no:cacheprovider tests

# 2. Scoring at n = 100,000, d = 768: bare product bound, exact all-anchors CorrEmbed + all-pairs
#    Pearson, 1000 sampled anchors, the full default report.
step score_bench 150 "$PY" benchmarks/score_bench.py --sizes "$SCORE_N" --dim 768 --slots 300 \
  --cases bare exact sampled report --repeat 3 --device "$DEVICE"

# 3. Embedding: bf16, batch 128; forward-only bound vs end-to-end vs decode-only (no incremental
#    case: it runs on the CPU).
step embed_bench 180 "$PY" benchmarks/embed_bench.py --device "$EMBED_DEVICE" --precision "$EMBED_PRECISION" \
  --batch-size "$EMBED_BATCH" --images "$EMBED_IMAGES" --workers "$EMBED_WORKERS" --repeats "$EMBED_REPEATS" \
  --archs "$ARCHS" --incremental-arch ""

echo "Steps: $STEPS_OK ok, $STEPS_FAILED failed ($MODE mode)" >> "$REPORT"
echo "report: $REPORT" >&2
[ "$STEPS_FAILED" -eq 0 ]
