#!/usr/bin/env bash
# The CUDA checks, run on a machine with a CUDA GPU from the repository root:
#   tests/test_cuda.py, then bench/gpu.py (trainer rounds, oracle throughput, equal-budget runs), then
#   (PARTS=tests,reparam) the reparametrisation benchmark on the 1000-bead loops with CUDA oracles and
#   the same on the CPU, about 3 minutes.
# Logs and JSON go to $OUT (default ./gpu_out). Missing Python packages travel as wheels in
# .whl/ (openmm, OpenMM-CUDA-13, pdbfixer, cma for the GPU image's Python 3.12; about 17 MB), made with
#   P="--platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64"
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $P -d .whl \
#       openmm==8.6.1 OpenMM-CUDA-13==8.6.1
#   pip download --no-deps -d .whl cma==4.5.0 pdbfixer==1.12.0 && pip wheel --no-deps -w .whl .whl/pdbfixer-*.tar.gz
# Usage: OUT=gpu_out BUDGET_S=45 bash bench/gpu_check.sh
# The H200 tables in bench/results/gpu/ (h200*.json) come from gpu.json and gpu_budget.json.
set -uo pipefail
OUT=${OUT:-gpu_out}
BUDGET_S=${BUDGET_S:-45}
PARTS=${PARTS:-tests,bench}  # which of: tests, bench, reparam (BUDGET_S=0 skips the equal-budget runs)
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/env.log"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  # OpenMM's CUDA plugin looks for cuFFT and NVRTC in <site>/nvidia/cu13/lib: point it at the image's
  NV=$(python3 -c "import nvidia; print(list(nvidia.__path__)[0])")
  ln -sfn "$NV" /tmp/site/nvidia
  export LD_LIBRARY_PATH="$NV/cu13/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
python3 - <<'PY' 2>&1 | tee -a "$OUT/env.log"
import sys, torch
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())
try:
    import openmm
    print("openmm", openmm.__version__, [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())])
    print("plugin failures:", openmm.Platform.getPluginLoadFailures())
except Exception as exc:
    print("openmm import failed:", exc)
PY
[[ ,$PARTS, == *,tests,* ]] && timeout 180 python3 -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py 2>&1 | tee "$OUT/pytest.log"
[[ ,$PARTS, == *,bench,* ]] && timeout 150 python3 bench/gpu.py --json "$OUT/gpu.json" 2>&1 | tee "$OUT/gpu.log"
if [[ "$BUDGET_S" != "0" && ,$PARTS, == *,bench,* ]]; then
  timeout $((4 * BUDGET_S + 40)) python3 bench/gpu.py --skip rounds,oracles --budget-s "$BUDGET_S" \
    --json "$OUT/gpu_budget.json" 2>&1 | tee "$OUT/budget.log"
fi
if [[ ,$PARTS, == *,reparam,* ]]; then
  for dev in cuda cpu; do
    timeout 200 python3 -m openmm_actionmin.cli bench reparam --systems loop_pure_lj_1000 \
      --methods adam_x,lbfgs_x,linear,gnn --seeds 1 --budget-s 20 --device $dev \
      --json "$OUT/reparam_$dev.json" 2>&1 | tee "$OUT/reparam_$dev.log"
  done
fi
