#!/usr/bin/env bash
# GPU checks for a lent device session, in order of priority, within about 10 minutes.
#
#   OUT=/some/dir bash benchmarks/device_check.sh
#
# Writes into $OUT: gpu.txt (card, driver, torch), loss_cuda.md/.json (TACO losses, the
# SwinViT step and the loss as a percentage of it), methods_gpu.md/.json (one training step
# per method) and, if time is left, benchmark_full/ (the GPU benchmark preset). Copy what
# you keep into benchmarks/results/; every table names the card.
#
# Packages the device lacks (lightly, monai, nibabel) can travel in a folder named by
# SITE (default .cache/helperF_site), which is put on PYTHONPATH when it exists.
set -uo pipefail
OUT=${OUT:?set OUT to an output folder}
SITE=${SITE:-.cache/helperF_site}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -d "$SITE" ]; then
    export PYTHONPATH="$PWD/$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" \
    | tee -a "$OUT/gpu.txt"

timeout 180 python3 benchmarks/bench_loss.py --device cuda --tokens 27 1728 \
    --out "$OUT/loss_cuda.md" 2>&1 | tail -40 | tee "$OUT/loss_log.txt"
timeout 150 python3 benchmarks/bench_methods.py --device cuda \
    --out "$OUT/methods_gpu.md" 2>&1 | tail -30 | tee "$OUT/methods_log.txt"
timeout 270 python3 -m lightly_topo.cli.main benchmark --preset full --device cuda \
    --out "$OUT/benchmark_full" 2>&1 | tail -30 | tee "$OUT/benchmark_log.txt"
ls -R "$OUT" | head -50
