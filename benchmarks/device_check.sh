#!/usr/bin/env bash
# GPU checks for a lent device session, in order of priority, within about 8 minutes.
#
#   OUT=/some/dir bash benchmarks/device_check.sh            # on one H100 / H200
#   OUT=/some/dir bash benchmarks/device_check.sh --dry-run  # on this CPU: the code paths only
#
# Writes into $OUT: gpu.txt (card, driver, torch), loss_cuda.md/.json (the TACO losses at
# 27, 216, 1728 and 13824 tokens with and without max_tokens, growth exponents, the SwinViT
# encoder step and the loss as a percentage of it at 1728 and 13824 tokens),
# methods_gpu.md/.json (one training step per method, per encoded volume against simclr)
# and, if time is left, benchmark_full/ (the GPU benchmark preset). Copy what you keep into
# benchmarks/results/; every table names the card. The dry run uses tiny sizes on the CPU
# (tests/test_device_check.py runs it) so that the script cannot rot between device loans.
#
# Packages the device lacks (lightly, monai, nibabel) can travel in a folder named by
# SITE (default .cache/helperF_site), which is put on PYTHONPATH when it exists.
set -uo pipefail
OUT=${OUT:?set OUT to an output folder}
SITE=${SITE:-.cache/helperF_site}
PYTHON=${PYTHON:-python3}
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; fi
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -d "$SITE" ]; then
    export PYTHONPATH="$PWD/$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
status=0
step() {  # step NAME TIMEOUT_S COMMAND...: run, log, remember a failure, go on
    local name=$1 limit=$2
    shift 2
    timeout "$limit" "$@" > "$OUT/${name}_log.txt" 2>&1
    local rc=$?
    tail -25 "$OUT/${name}_log.txt"
    if [ "$name" = benchmark ] && [ "$rc" -eq 3 ]; then
        # the benchmark ran; its instrument check failed (the report says why)
        echo "== $name: exit 3 (ran; instrument check failed)" | tee -a "$OUT/steps.txt"
        return
    fi
    echo "== $name: exit $rc" | tee -a "$OUT/steps.txt"
    if [ "$rc" -ne 0 ]; then status=1; fi
}

if [ "$DRY" = 1 ]; then
    echo "dry run on $($PYTHON -c 'import platform; print(platform.processor() or platform.machine())')" \
        | tee "$OUT/gpu.txt"
    step loss 300 "$PYTHON" benchmarks/bench_loss.py --dry-run --out "$OUT/loss_dry.md"
    step methods 300 "$PYTHON" benchmarks/bench_methods.py --preset dry --methods simclr taco \
        --out "$OUT/methods_dry.md"
    # the CLI path of the last step, with the smallest preset (full needs the GPU's hour)
    step benchmark 300 "$PYTHON" -m lightly_topo.cli.main benchmark --preset smoke \
        --device cpu --out "$OUT/benchmark_smoke"
else
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
    "$PYTHON" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" \
        | tee -a "$OUT/gpu.txt"
    step loss 200 "$PYTHON" benchmarks/bench_loss.py --device cuda --full-large \
        --out "$OUT/loss_cuda.md"
    step methods 150 "$PYTHON" benchmarks/bench_methods.py --device cuda \
        --out "$OUT/methods_gpu.md"
    step benchmark 120 "$PYTHON" -m lightly_topo.cli.main benchmark --preset full \
        --device cuda --out "$OUT/benchmark_full"
fi
ls -R "$OUT" | head -50
exit $status
