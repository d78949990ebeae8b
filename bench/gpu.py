"""GPU against CPU in one process (thin wrapper); see :mod:`openmm_actionmin.benchmarks.gpu`.

Usage (on a machine with a CUDA device): python bench/gpu.py [--json FILE] [--budget-s 60] ...

bench/gpu_check.sh runs it after tests/test_cuda.py; the tables it gives are in
bench/results/gpu/ (h200.json, h200_trainer_rounds.json, h200_equal_budget.json).
"""

import sys
from pathlib import Path

try:
    from openmm_actionmin.benchmarks.gpu import main
except ModuleNotFoundError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from openmm_actionmin.benchmarks.gpu import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
