"""Oracle throughput benchmark (thin wrapper).

Torch LJ38 vs ASE LennardJones, OpenMM Trp-cage ms/evaluation (vacuum, XML OBC2,
native OBC2) and the Context-pool speed-up; see
:mod:`openmm_actionmin.benchmarks.oracles`.

Usage: python bench/oracles.py [--json FILE] [--repeats 3] [--pool-batch 64] ...

Its numbers are the table in bench/results/oracles/throughput.json.
"""

import sys
from pathlib import Path

try:
    from openmm_actionmin.benchmarks.oracles import main
except ModuleNotFoundError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from openmm_actionmin.benchmarks.oracles import main

if __name__ == "__main__":
    main(sys.argv[1:])
