"""Ablation of the action-guided step in cluster basin hopping (equal wall time, same starts).

Arms, all :func:`guided.guided_basin_hopping` (``bench/experiments/guided.py``) with the
same seed (so the same random starts and the same loop):

* ``bh``: plain basin hopping (``action=False``), the ablation;
* ``guided``: the action trainer fitted to quenched energies in the trust
  region of the canonicalised lowest minima, its candidate proposed to a
  walker (30 % of the wall time);
* ``guided_nocanon``: the same with the minima only recentred, not
  canonicalised;
* ``guided_wide``: canonical, with the region's half-width capped at 1.5
  instead of 0.5.

Run seeds in pieces (each piece appends JSON lines to ``--out``), then
summarise into a results file::

    python bench/experiments/guided_ablation.py run --system LJ38 --seeds 0-4 --budget-s 10 --out /tmp/ablation.jsonl
    python bench/experiments/guided_ablation.py run --system LJ38 --seeds 5-9 --budget-s 10 --out /tmp/ablation.jsonl
    python bench/experiments/guided_ablation.py summary --rows /tmp/ablation.jsonl \\
        --json bench/results/clusters/action_ablation_lj38_10seeds.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import time
from datetime import date
from pathlib import Path
from typing import Any, Dict, List

import sys

sys.path.insert(0, str(Path(__file__).resolve().parent))

from guided import GuidedConfig, guided_basin_hopping  # noqa: E402
from openmm_actionmin.systems.clusters import named_system

ARMS: Dict[str, Dict[str, Any]] = {
    "bh": {"action": False},
    "guided": {"action": True, "canonical": True},
    "guided_nocanon": {"action": True, "canonical": False},
    "guided_wide": {"action": True, "canonical": True, "max_half_width": 1.5},
}


#: Registry methods run beside the arms (``hybrid``: action candidates first, then basin hopping).
REGISTRY_ARMS = ("hybrid", "basin_hopping")


def _seeds(text: str) -> List[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def run(args: argparse.Namespace) -> None:
    """Run every arm on every seed; append one JSON line per run."""
    out = Path(args.out)
    for seed in _seeds(args.seeds):
        for arm in args.arms.split(","):
            system = named_system(args.system)
            t0 = time.perf_counter()
            if arm == "scipy_basinhopping_unbounded":
                from openmm_actionmin.benchmarks.clusters import run_scipy_basinhopping_unbounded

                r = run_scipy_basinhopping_unbounded(system, seed, args.budget_s, 1e-4)
                fields = {
                    "success": bool(r["success"]),
                    "time_to_gm_s": r["time_to_gm_s"],
                    "force_calls_to_gm": r["force_calls_to_gm"],
                    "best_energy": r["best_energy"],
                    "force_calls": r["total_force_calls"],
                    "hops": r.get("hops", 0),
                    "action_s": 0.0,
                    "action_runs": 0,
                    "action_candidate_energies": [],
                }
            else:
                if arm in REGISTRY_ARMS:
                    from openmm_actionmin.registry import METHODS, RunConfig

                    res = METHODS[arm].run(system, RunConfig(seed=seed, budget_s=args.budget_s))
                else:
                    res = guided_basin_hopping(system, GuidedConfig(seed=seed, budget_s=args.budget_s, **ARMS[arm]))
                e = res.extra
                fields = {
                    "success": e["success"],
                    "time_to_gm_s": e["time_to_target_s"],
                    "force_calls_to_gm": e["force_calls_to_target"],
                    "best_energy": res.energy,
                    "force_calls": res.force_calls,
                    "hops": e["hops"],
                    "action_s": e.get("action_s", 0.0),
                    "action_runs": len(e.get("action_runs", [])),
                    "action_candidate_energies": [r["candidate_energy"] for r in e.get("action_runs", [])],
                }
            row = {
                "system": system.name,
                "arm": arm,
                "seed": seed,
                "budget_s": args.budget_s,
                "reference_energy": system.reference_energy,
                "wall_s": time.perf_counter() - t0,
                **fields,
            }
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(
                json.dumps(
                    {k: row[k] for k in ("arm", "seed", "success", "time_to_gm_s", "best_energy", "action_runs")}
                )
            )


def summary(args: argparse.Namespace) -> None:
    """Summarise the rows (one table row per system and arm) into the results schema."""
    rows = [json.loads(line) for line in Path(args.rows).read_text().splitlines() if line.strip()]
    table, per_seed = [], []
    for system in dict.fromkeys(r["system"] for r in rows):
        for arm in dict.fromkeys(r["arm"] for r in rows if r["system"] == system):
            rs = sorted((r for r in rows if r["system"] == system and r["arm"] == arm), key=lambda r: r["seed"])
            budget = rs[0]["budget_s"]
            times = [r["time_to_gm_s"] if r["success"] else math.inf for r in rs]
            med_t = statistics.median(times)
            known = rs[0]["reference_energy"] is not None
            gaps = [r["best_energy"] - r["reference_energy"] for r in rs] if known else []
            table.append(
                [
                    system,
                    arm,
                    f"{sum(bool(r['success']) for r in rs)}/{len(rs)}" if known else "n/a",
                    (round(med_t, 2) if math.isfinite(med_t) else f">{budget:g}") if known else "-",
                    round(statistics.median(gaps), 4) + 0.0 if known else None,
                    round(statistics.median(r["best_energy"] for r in rs), 4),
                    round(statistics.mean(r["action_s"] for r in rs), 2),
                    round(statistics.median(r["hops"] for r in rs)),
                ]
            )
            per_seed += [
                [
                    system,
                    arm,
                    r["seed"],
                    r["success"],
                    None if r["time_to_gm_s"] is None else round(r["time_to_gm_s"], 3),
                    round(r["best_energy"], 6),
                    r["hops"],
                    round(r["action_s"], 2),
                    r["action_runs"],
                ]
                for r in rs
            ]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    data = {
        "title": args.title,
        "command": args.command,
        "date": date.today().isoformat(),
        "commit": commit,
        "machine": args.machine,
        "columns": [
            "system",
            "arm",
            "success",
            "median time to GM (s)",
            "median energy gap",
            "median best energy",
            "mean action s",
            "median hops",
        ],
        "rows": table,
        "notes": args.notes,
        "per_seed": {
            "columns": [
                "system",
                "arm",
                "seed",
                "success",
                "time to GM (s)",
                "best energy",
                "hops",
                "action s",
                "action runs",
            ],
            "rows": per_seed,
        },
    }
    Path(args.json).write_text(json.dumps(data, indent=1) + "\n")
    for row in table:
        print(row)


def main() -> None:
    """Command line: ``run`` or ``summary``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--system", default="LJ38")
    r.add_argument("--seeds", default="0-9")
    r.add_argument("--budget-s", type=float, default=10.0)
    r.add_argument("--arms", default="bh,guided,guided_nocanon")
    r.add_argument("--out", required=True)
    s = sub.add_parser("summary")
    s.add_argument("--rows", required=True)
    s.add_argument("--json", required=True)
    s.add_argument("--title", default="Action-guided basin hopping against its ablation, LJ38, 10 seeds, 10 s")
    s.add_argument("--command", default="")
    s.add_argument("--machine", default="2-core shared CPU, no GPU")
    s.add_argument("--notes", default="")
    args = p.parse_args()
    run(args) if args.cmd == "run" else summary(args)


if __name__ == "__main__":
    main()
