#!/usr/bin/env bash
# Seconds per epoch and peak GPU memory of the aligned paper preset at MOSEI size, fp32 and
# bf16 (synthetic data in the real layout), beside the authors' ~58 s/epoch. Under 8 minutes
# on one recent GPU; extra arguments go to bench/gpu.py (e.g. --scale 0.25).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
timeout 470 "$PYTHON" bench/gpu.py --precisions fp32,bf16 "$@"
