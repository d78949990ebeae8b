#!/usr/bin/env python
"""Offline: would shorter steps towards the model's minimiser have come closer to the minimum?

Reads the candidates a probe recorded (``bench/experiments/probe_growth_head.py --record-candidates C.pt
--save H.json``) and, for every round where the trust region was at its floor, compares the
distance to the known minimum of the best point so far, e, with that of the best point moved
by a fraction a of the way to the round's candidate, e + a * step: a test of shorter steps at
the region's floor (online, they helped Alpine 1 and hurt Schaffer F7 at D = 1000; not adopted).
It also prints where the best point's error sits: the share of its squared distance in the
largest 5 % of coordinates and in the first 32 (how the uneven initialisation of the narrow
monotone layer shows up).

Example::

    python bench/experiments/probe_growth_head.py --function schaffer_f7 --dim 1000 --budget-s 450 --synthetic \\
        --save h.json --record-candidates c.pt
    python bench/experiments/analyse_steps.py c.pt h.json
"""

import argparse
import json
import statistics

import torch
from analyse_histories import error_shares  # bench/experiments/ is on the path when this runs as a script

FRACTIONS = (1.0, 0.5, 0.25)


def analyse(z: torch.Tensor, reference: torch.Tensor, history: list, floor: float) -> dict:
    """Per fraction: distance ratios ``|e + a step| / |e|`` over the floor rounds."""
    ratios = {a: [] for a in FRACTIONS}
    cosines = []
    for t in range(1, z.shape[0]):
        prev = history[t - 1]
        if prev["region_radius"] > floor * (1 + 1e-9):
            continue
        best = z[prev["best_round"]]
        e = best - reference
        step = z[t] - best
        if float(step.norm()) == 0.0:
            continue
        cosines.append(float(-(e @ step) / (e.norm() * step.norm())))
        for a in FRACTIONS:
            ratios[a].append(float((e + a * step).norm() / e.norm()))
    return {"rounds": len(cosines), "cosines": cosines, "ratios": ratios}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("candidates", help="torch file with z [rounds, d] and reference [d] (probe --record-candidates)")
    p.add_argument(
        "history", nargs="?", default=None, help="probe --save JSON (omit if the torch file holds 'history')"
    )
    p.add_argument("--floor", type=float, default=0.05, help="region_min of the run")
    args = p.parse_args()
    data = torch.load(args.candidates, weights_only=False)
    reference = data.get("reference", data.get("ref")).double().reshape(-1)
    if args.history:
        with open(args.history) as fh:
            saved = json.load(fh)
        history = saved["history"] if isinstance(saved, dict) else saved
    else:
        history = data["history"]
    z = data["z"].double()
    out = analyse(z, reference, history, args.floor)
    if not out["rounds"]:
        print("no round with the region at its floor")
        return 1
    distance, median, top, first = error_shares((z[history[-1]["best_round"]] - reference).numpy())
    print(
        f"best point: distance {distance:.1f}, median |error| {median:.2f}, "
        f"share of squared distance in the largest 5 % of coordinates {top:.2f}, "
        f"in the first 32 coordinates {first:.2f}"
    )
    print(
        f"{out['rounds']} rounds at the floor; median cosine(step, towards the minimum) "
        f"{statistics.median(out['cosines']):.3f}"
    )
    print("| fraction of the step | median |e + a step| / |e| | rounds that come closer |")
    print("|---|---|---|")
    for a, r in out["ratios"].items():
        print(f"| {a} | {statistics.median(r):.3f} | {sum(x < 1 for x in r) / len(r):.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
