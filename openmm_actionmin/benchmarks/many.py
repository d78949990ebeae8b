"""Many runs: every target x method x seed as a job, on local cores or a Dask cluster.

Each job is one :func:`openmm_actionmin.minimize` run of a registered method
(``actionmin methods`` lists them) and writes one row to the ``--results``
JSON Lines file when it finishes (:func:`openmm_actionmin.executor.minimize_many`).
Running the same command again skips the jobs that have a row, so an
interrupted benchmark resumes; with ``--checkpoint-dir`` a job that was cut
off continues from its own checkpoint.

The summary prints per target and method the runs, the successes (the
method's answer within its tolerance of the target's reference energy, where
the target has one) and, over the successful runs, the mean and median force
calls and seconds to the first encounter of the target energy, and the best
and median final energies.

Command line (``actionmin bench many ...`` or ``python -m
openmm_actionmin.benchmarks.many``)::

    --targets LJ13,LJ38 --methods basin_hopping --seeds 0-99 --budget-s 10 \\
        --executor dask --workers 2 --results runs.jsonl

``--scheduler tcp://HOST:8786`` sends the jobs to a running Dask scheduler
instead of a local cluster (see ``docs/scale.md``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ..executor import EXECUTORS, make_jobs, minimize_many, read_rows, summarize
from ..registry import METHOD_NAMES, check_budget

EXAMPLE = (
    "actionmin bench many --targets LJ13 --methods basin_hopping --seeds 0-3 --budget-s 2 --executor serial "
    "--results runs.jsonl"
)


def parse_seeds(text: str) -> List[int]:
    """Seeds from ``"N"`` (seeds 0..N-1), ``"A-B"`` (A..B inclusive) or a comma list of seeds and ranges.

    Raises:
        ValueError: text that is none of these.
    """
    text = text.strip()
    if text.isdigit():
        if int(text) == 0:
            raise ValueError("--seeds 0 is a count of no seeds; for seed 0 alone write 0-0")
        return list(range(int(text)))
    seeds: List[int] = []
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        if sep and lo.strip().isdigit() and hi.strip().isdigit() and int(lo) <= int(hi):
            seeds.extend(range(int(lo), int(hi) + 1))
        elif not sep and part.isdigit():
            seeds.append(int(part))
        else:
            raise ValueError(f"--seeds: {text!r} is not a count (10), a range (0-99) or a list (0,5,10-19)")
    return list(dict.fromkeys(seeds))


def parse_options(items: Sequence[str]) -> Dict[str, Any]:
    """``KEY=VALUE`` strings as a dict; a value is read as JSON (numbers, true, null, lists) or kept as text.

    Raises:
        ValueError: an item without ``=``.
    """
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--option {item!r}: write KEY=VALUE, e.g. --option max_steps=200")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def _cell(value: Optional[float], fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, fmt)


def format_summary(table: Sequence[Mapping[str, Any]]) -> str:
    """The summary of :func:`openmm_actionmin.executor.summarize` as a text table."""
    head = (
        f"{'target':12s} {'method':22s} {'runs':>5s} {'success':>8s} {'calls to target':>17s} "
        f"{'(median)':>10s} {'s to target':>12s} {'(median)':>9s} {'best energy':>14s} {'median energy':>14s}"
    )
    lines = [head, "-" * len(head)]
    for s in table:
        success = "-" if s["successes"] is None else f"{s['successes']}/{s['runs']}"
        if s["errors"]:
            success += f" ({s['errors']} err)"
        lines.append(
            f"{s['target']:12s} {s['method']:22s} {s['runs']:5d} {success:>8s} "
            f"{_cell(s['mean_force_calls_to_target'], ',.0f'):>17s} "
            f"{_cell(s['median_force_calls_to_target'], ',.0f'):>10s} "
            f"{_cell(s['mean_time_to_target_s'], '.2f'):>12s} {_cell(s['median_time_to_target_s'], '.2f'):>9s} "
            f"{_cell(s['best_energy'], '.6f'):>14s} {_cell(s['median_energy'], '.6f'):>14s}"
        )
    lines.append("calls/s to target: mean and median over the successful runs (first encounter of the target energy)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's argument parser."""
    p = argparse.ArgumentParser(
        prog="actionmin bench many",
        description=__doc__.split("\n\n")[0],
        epilog=f"example:\n  {EXAMPLE}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--targets",
        required=True,
        help="comma-separated targets: cluster names (LJ38), functions (alpine1:50), PDB paths",
    )
    p.add_argument("--methods", required=True, help=f"comma-separated registered methods: {', '.join(METHOD_NAMES)}")
    p.add_argument(
        "--seeds", default="10", help="a count (10: seeds 0-9), a range (0-99) or a list (0,5,10-19) (default 10)"
    )
    p.add_argument(
        "--budget-s",
        default="60",
        help="wall-clock budget per job in seconds, or 'none' for jobs bounded by "
        "an --option such as max_steps (default 60)",
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a method option for every job (repeatable), e.g. --option max_steps=200 --option n_walkers=8",
    )
    p.add_argument("--executor", default="processes", choices=EXECUTORS, help="where jobs run (default processes)")
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="Dask scheduler address (tcp://host:8786) for --executor dask (default: a local cluster of --workers)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes of processes / a local Dask cluster (default cores // threads)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch, OpenBLAS and OpenMM threads per job (default 1)")
    p.add_argument(
        "--results",
        default="runs.jsonl",
        help="JSON Lines file of rows; jobs with a row are skipped (default runs.jsonl)",
    )
    p.add_argument(
        "--checkpoint-dir", default=None, help="folder of per-job checkpoints, so a cut-off job resumes (default none)"
    )
    p.add_argument(
        "--checkpoint-interval-s", type=float, default=60.0, help="seconds between a job's checkpoints (default 60)"
    )
    p.add_argument("--retries", type=int, default=2, help="times a failed job runs again (default 2)")
    p.add_argument("--quiet", action="store_true", help="print the summary only, not a line per finished job")
    return p


def _progress(row: Mapping[str, Any]) -> None:
    if row.get("error") is not None:
        print(f"{row['name']}: error: {row['error']}", flush=True)
        return
    t = row.get("time_to_target_s")
    print(
        f"{row['name']}: energy {row['energy']:.6f} in {row['wall_s']:.1f} s, {row['force_calls']} force calls"
        f"{'' if t is None else f', target after {t:.2f} s'} ({row['host']}:{row['pid']})",
        flush=True,
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark; returns the exit code."""
    args = build_parser().parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    budget = None if args.budget_s.strip().lower() == "none" else check_budget(args.budget_s, "--budget-s")
    jobs = make_jobs(targets, methods, parse_seeds(args.seeds), budget_s=budget, options=parse_options(args.option))
    done = {row["key"] for row in read_rows(args.results) if row.get("error") is None}
    left = sum(job.key not in done for job in jobs)
    print(
        f"{len(jobs)} jobs, {len(jobs) - left} already in {args.results}, {left} to run ({args.executor})", flush=True
    )
    try:
        rows = minimize_many(
            jobs,
            args.executor,
            results=args.results,
            scheduler=args.scheduler,
            n_workers=args.workers,
            threads_per_job=args.threads,
            checkpoint_dir=args.checkpoint_dir,
            checkpoint_interval_s=args.checkpoint_interval_s,
            retries=args.retries,
            on_row=None if args.quiet else _progress,
        )
    except ImportError as exc:  # --executor dask without Dask installed
        print(f"actionmin: error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(summarize(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
