#!/usr/bin/env python
"""Blind cluster basin hopping at several compression constants, same seeds and budget each.

For each constant ``k`` and seed, runs ``basin_hopping`` (``BasinHoppingConfig(seed=s,
budget_s=T, compression=k)``) on a cluster of the package (``LJ38``, ``BLJ100``, ...) and prints
the final energy, whether the reference energy was reached, and the time and force calls to
its first encounter; then the successes (or the median energy where there is no reference).

Usage:
    python bench/experiments/compression_sweep.py --system LJ38 --budget-s 40 --ks 0,0.1,0.3,1,3 --seeds 5
"""

from __future__ import annotations

import argparse
import statistics

import openmm_actionmin as am
from openmm_actionmin.search.basin_hopping import BasinHoppingConfig, basin_hopping


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", required=True)
    parser.add_argument("--budget-s", type=float, default=40.0)
    parser.add_argument("--ks", default="0,1", help="comma-separated compression constants")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    for k in (float(v) for v in args.ks.split(",")):
        energies, found = [], 0
        for seed in range(args.seeds):
            r = basin_hopping(
                am.as_system(args.system), BasinHoppingConfig(seed=seed, budget_s=args.budget_s, compression=k)
            )
            energies.append(r.energy)
            found += bool(r.extra["success"])
            print(
                f"k={k:g} seed={seed} energy={r.energy:.6f} success={r.extra['success']} "
                f"time_to_target_s={r.extra['time_to_target_s']} "
                f"force_calls_to_target={r.extra['force_calls_to_target']}",
                flush=True,
            )
        print(
            f"k={k:g}: {found}/{args.seeds} reached the reference; median energy {statistics.median(energies):.6f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
