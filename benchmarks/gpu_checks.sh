#!/usr/bin/env bash
# Every GPU measurement of issue 19 in one go, for a lent GPU machine (no package index there):
#   here:    EXTRA="roifile==2026.2.10" bash ../shared/tools/device_wheels.sh      (writes .whl/)
#   there:   bash benchmarks/gpu_checks.sh                                     (through the device tool; writes $OUT)
# 1. beadseg-predict against the network alone on 240 lab-camera frames (1440x1080, 16 bit), with 0, 4, 8 and 14
#    finishing workers, per-stage CPU costs, tables compared (benchmarks/pipeline.py);
# 2. the training loop against a plain PyTorch loop on the lab's settings (UNet, batch 32, 256² patches, AMP),
#    after warm-up steps (benchmarks/train_throughput.py);
# 3. the training loader alone, per worker, first epoch and steady state (benchmarks/loader.py).
set -euo pipefail
OUT=${OUT:-outputs/gpu_checks}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 benchmarks/pipeline.py --frames 240 --workers 0 4 8 14 --output "$OUT/pipeline.md" 2>&1 | tail -25
python3 benchmarks/train_throughput.py --amp --steps 60 --warmup 20 data.batch_size=32 data.patch_size=256 \
  data.num_workers=8 2>&1 | tail -6 | tee "$OUT/train_throughput.md"
python3 benchmarks/loader.py --workers 0 4 8 --images 200 2>&1 | tail -10 | tee "$OUT/loader.md"
