#!/usr/bin/env bash
# The GPU check of issue 29 (item 5) as one short prepared run, for a machine with CUDA.
#
#   benchmarks/gpu_check.sh [OUT_DIR]      (default: $OUT, else benchmarks/results/gpu)
#
# 1. `pytest -m gpu`: a converge:50/4 and a sprint:150 step and a search (ES, sac-structured)
#    through final retraining, all with device="cuda" (tests/test_gpu.py);
# 2. the step profile of benchmarks/profile_step.py with --device cuda: converge:50/4 (-v1) and
#    sprint:150 on ES and MR 90 % masks, for every data set found under CIESS_DATA_DIR (ML-1M,
#    Yelp2018) and the synthetic one; the units and profile_step.md land in OUT_DIR.
# Each profile unit is cached as it finishes, so a rerun with the same OUT_DIR resumes.
# DEVICE=cpu runs the same script on a CPU (the pytest step then skips) to check it.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-benchmarks/results/gpu}}"
py="${PYTHON:-.venv/bin/python}"
device="${DEVICE:-cuda}"
mkdir -p "$out"
{
  date -u +"%Y-%m-%d %H:%M UTC"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null \
    || echo "nvidia-smi: not found"
  "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'available', torch.cuda.is_available())"
} | tee -a "$out/device.txt"  # -a: a rerun keeps the earlier runs' records

"$py" -m pytest -m gpu tests/test_gpu.py -q -p no:cacheprovider 2>&1 | tee -a "$out/pytest_gpu.txt"

datasets=(synthetic)
data_dir="${CIESS_DATA_DIR:-}"
for tag in ml-1m yelp2018; do
  if [ -n "$data_dir" ] && [ -d "$data_dir/$tag" ]; then
    datasets+=("$tag")
  else
    echo "profile: $tag skipped (set CIESS_DATA_DIR to the folder that holds $tag/)" \
      | tee -a "$out/device.txt"
  fi
done
for tag in "${datasets[@]}"; do  # one data set at a time: the cheap ones are in first
  "$py" benchmarks/profile_step.py --device "$device" --datasets "$tag" \
    ${data_dir:+--data-dir "$data_dir"} --designs converge:50/4 sprint:150 \
    --masks "ES @90%" "MR @90%" --results-dir "$out"
done
echo "GPU check written to $out"
