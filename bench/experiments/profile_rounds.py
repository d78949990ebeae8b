"""Where the action trainer's time goes: torch.profiler over a few rounds, CPU or CUDA.

Usage: python bench/experiments/profile_rounds.py [--function alpine1] [--dim 1000] [--rounds 8] [--device cuda]

Prints the ops with the most self CPU time (on CUDA that is mostly launch and
synchronisation cost) and, on CUDA, the ops with the most device time, and the
number of ops launched per round.
"""

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

try:
    from openmm_actionmin.benchmarks.synthetic import make_system
except ModuleNotFoundError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from openmm_actionmin.benchmarks.synthetic import make_system
from openmm_actionmin.search.action_config import SYNTHETIC_ACTION, ActionConfig
from openmm_actionmin.search.action import ActionTrainer


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--function", default="alpine1")
    p.add_argument("--dim", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    system = make_system(args.function, args.dim, 0, device=args.device)
    config = ActionConfig(seed=0, budget_s=3600.0, max_rounds=args.rounds, method_name="action", **SYNTHETIC_ACTION)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device.startswith("cuda") else [])
    with profile(activities=activities) as prof:
        result = ActionTrainer(system, config).run()
    events = prof.key_averages()
    n_ops = sum(e.count for e in events if e.key.startswith("aten::"))
    print(
        f"{args.function} D={args.dim} on {args.device}: {args.rounds} rounds + warm start in "
        f"{result.wall_s:.1f} s (profiled), {n_ops} aten ops, {n_ops / (args.rounds + 1):.0f} per round"
    )
    print(events.table(sort_by="self_cpu_time_total", row_limit=15))
    if args.device.startswith("cuda"):
        print(events.table(sort_by="self_device_time_total", row_limit=12))
    return 0


if __name__ == "__main__":
    sys.exit(main())
