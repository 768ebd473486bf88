#!/usr/bin/env bash
# The GPU check for a lent machine (one H200: under 5 minutes). From the repository
# root:   bash benchmarks/gpu_check.sh
# Uses the machine's own python3 with torch and scikit-learn (nothing is installed);
# writes gpu_tests.log and GPU_CHECK.md to $OUT (the device tool's output folder)
# or to /tmp. Fails when the CUDA tests fail or GPU and CPU fits disagree.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out="${OUT:-/tmp}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, sklearn, numpy, scipy; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(), '| scikit-learn', sklearn.__version__, '| numpy', numpy.__version__, '| scipy', scipy.__version__)"
python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/test_gpu.py 2>&1 | tee "$out/gpu_tests.log"
python3 benchmarks/gpu_check.py --out "$out/GPU_CHECK.md" "$@"
