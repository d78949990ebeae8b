#!/usr/bin/env python
"""First-encounter statistics of cluster searches from ``actionmin bench many`` results, with GMIN's anchors.

Reads JSON Lines files of ``actionmin bench many`` (and JSON files of ``actionmin bench clusters``,
for its bench-only peers) and writes one results table
(bench/results schema): per target and method (with the options its jobs had), the runs, the
runs that reached the target's reference energy (within 1e-4 epsilon), and the mean, median,
minimum and maximum of the force calls and seconds to its first encounter over those runs,
plus the median final energy. Rows from the Wales group's published GMIN basin-hopping example
on LJ38 (mean over 100 random starts) are added for comparison.

Usage:
    python bench/first_encounter_table.py runs_lj38.jsonl runs_lj55.jsonl --commands "actionmin bench many ..." \\
        --title "..." --out bench/results/clusters/first_encounter.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import date
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from make_results import git_commit, write_table  # bench/ is the script's folder

#: GMIN's basin hopping on LJ38, mean first encounter over 100 random starts (Wales group's example).
GMIN_ANCHORS = [
    [
        "LJ38",
        "GMIN basin hopping (published; 2,825 quenches)",
        "100",
        "100",
        387785,
        None,
        None,
        None,
        None,
        None,
        -173.928427,
    ],
    [
        "LJ38",
        "GMIN, symmetry-adapted moves (published; 738 quenches)",
        "100",
        "100",
        59632,
        None,
        None,
        None,
        None,
        None,
        -173.928427,
    ],
]


def _label(row: Dict[str, Any]) -> str:
    options = row.get("options") or {}
    return row["method"] + "".join(f" {k}={v}" for k, v in sorted(options.items()))


def _read(path: Path) -> List[Dict[str, Any]]:
    """Rows of ``actionmin bench many`` (JSON Lines) or ``actionmin bench clusters --json`` (a JSON list),
    in the first's keys."""
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [
        {
            "target": r["system"],
            "method": r["method"],
            "options": {},
            "budget_s": r["budget_s"],
            "success": r["success"],
            "force_calls_to_target": r["force_calls_to_gm"],
            "time_to_target_s": r["time_to_gm_s"],
            "energy": r["best_energy"],
            "error": r.get("error"),
        }
        for r in json.loads(path.read_text())
    ]


def _budget(runs: str) -> float:
    """The budget of a table row's "runs" cell ("100 x 60 s"; published rows last)."""
    return float(runs.split(" x ")[1].split()[0]) if " x " in runs else float("inf")


def _stats(values: List[float], digits: int) -> Tuple[Optional[float], ...]:
    if not values:
        return None, None, None, None
    return (
        round(statistics.fmean(values), digits),
        round(statistics.median(values), digits),
        round(min(values), digits),
        round(max(values), digits),
    )


def main(argv: Optional[List[str]] = None) -> int:
    """Build the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "raw",
        nargs="+",
        help="JSON Lines files of actionmin bench many (.jsonl) or JSON files of actionmin bench clusters (.json)",
    )
    parser.add_argument("--commands", nargs="+", required=True, help="the commands that wrote them")
    parser.add_argument("--title", required=True)
    parser.add_argument("--machine", default="2-core CPU shared with other jobs, no GPU")
    parser.add_argument("--notes", default="")
    parser.add_argument("--skip", default="", help="comma-separated methods whose rows are left out")
    parser.add_argument(
        "--keep",
        default=None,
        help="an earlier table of this script: its rows for (target, method) "
        "pairs the raw files do not have are kept, with its commands",
    )
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    groups: Dict[Tuple[str, str, float], List[Dict[str, Any]]] = {}
    for path in args.raw:
        for row in _read(Path(path)):
            if row["method"] in args.skip.split(","):
                continue
            groups.setdefault((row["target"], _label(row), float(row.get("budget_s") or 0)), []).append(row)
    rows = []
    for (target, label, _), runs in groups.items():
        budget = runs[0].get("budget_s")
        hits = [r for r in runs if r.get("success")]
        calls = [float(r["force_calls_to_target"]) for r in hits if r.get("force_calls_to_target") is not None]
        times = [float(r["time_to_target_s"]) for r in hits if r.get("time_to_target_s") is not None]
        energies = [r["energy"] for r in runs if r.get("error") is None and r.get("energy") is not None]
        mean_c, med_c, min_c, max_c = _stats(calls, 0)
        mean_t, med_t, _, max_t = _stats(times, 2)
        judged = any(r.get("success") is not None for r in runs)
        rows.append(
            [
                target,
                label,
                f"{len(runs)} x {budget:g} s",
                f"{len(hits)}" if judged else "no reference",
                None if mean_c is None else int(mean_c),
                None if med_c is None else int(med_c),
                None if min_c is None else int(min_c),
                None if max_c is None else int(max_c),
                mean_t,
                med_t,
                round(statistics.median(energies), 6) if energies else None,
            ]
        )
    commands = list(args.commands)
    if args.keep:
        kept = json.loads(Path(args.keep).read_text())
        have = {(r[0], r[1], r[2]) for r in rows} | {(r[0], r[1], r[2]) for r in GMIN_ANCHORS}
        rows.extend(r for r in kept["rows"] if (r[0], r[1], r[2]) not in have)
        commands += [c for c in kept["command"] if not c.startswith("python bench/first_encounter_table.py")]
    rows.extend(GMIN_ANCHORS)
    order = {t: i for i, t in enumerate(["LJ38", "LJ55", "LJ75", "LJ98", "LJ102", "BLJ100"])}
    rows.sort(key=lambda r: (order.get(r[0], 99), r[0], _budget(r[2])))
    table = {
        "title": args.title,
        "command": commands
        + [
            f"python bench/first_encounter_table.py {' '.join(args.raw)} ..."
            + (f" --keep {args.keep}" if args.keep else "")
        ],
        "date": date.today().isoformat(),
        "commit": git_commit(),
        "machine": args.machine,
        "columns": [
            "target",
            "method",
            "runs",
            "found",
            "mean calls to target",
            "median calls to target",
            "min calls",
            "max calls",
            "mean s to target",
            "median s to target",
            "median final energy",
        ],
        "rows": rows,
        "notes": (
            "Calls and seconds to the first encounter of the reference energy (within 1e-4 epsilon), over the "
            "runs that found it within their budget; a run that did not is not in the mean. "
            "GMIN rows: the published means over 100 random starts." + (" " + args.notes if args.notes else "")
        ),
    }
    write_table(args.out, table)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
