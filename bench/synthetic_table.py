#!/usr/bin/env python
"""Turn ``actionmin bench synthetic --json`` outputs into one results table (bench/results schema).

Rows: function, rotated or not, method (with the ``--option`` settings a run had), the
distance to the global minimum (or with ``--value energy``, the energy) per seed and its
median. Unrotated rows of an existing results table (``--unrotated``, the same function,
dimension and budget) can be put beside the rotated ones.

Usage:
    python bench/synthetic_table.py /tmp/rot_alpine1_d100.json /tmp/rot_schaffer_f7_d100.json \\
        --unrotated bench/results/synthetic/d100_120s.json \\
        --title "D = 100, 120 s: rotated and unrotated (shifted minimum), distance to the minimum" \\
        --out bench/results/synthetic/rotated_d100_120s.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import date
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from make_results import git_commit, write_table  # bench/ is the script's folder


def main(argv: Optional[List[str]] = None) -> int:
    """Build the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", nargs="+", help="outputs of actionmin bench synthetic --json")
    parser.add_argument("--unrotated", default=None, help="a results table whose shifted rows go beside")
    parser.add_argument(
        "--keep",
        default=None,
        help="an earlier table of this script: its rotated rows for "
        "methods the raw files do not have are kept, with its commands",
    )
    parser.add_argument(
        "--value",
        choices=("distance", "energy"),
        default="distance",
        help="what a cell holds: the distance to the global minimum or the energy reached",
    )
    parser.add_argument("--title", required=True)
    parser.add_argument("--note", default="", help="a sentence added to the table's notes (what the rows show)")
    parser.add_argument("--machine", default="2-core CPU shared with other jobs, no GPU")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.value == "energy" and (args.unrotated or args.keep):
        parser.error("--value energy reads the raw files only: --unrotated and --keep tables hold distances")
    runs: Dict[Tuple[str, bool, str], Dict[int, float]] = {}
    commands = []
    seeds = set()
    for path in args.raw:
        data = json.loads(Path(path).read_text())
        commands.append(data["command"])
        for row in data["rows"]:
            options = row.get("options") or {}
            label = row["method"] + "".join(f" {k}={v}" for k, v in sorted(options.items()))
            key = (row["function"], bool(row.get("rotated", False)), label)
            value = float(row[args.value])
            runs.setdefault(key, {})[int(row["seed"])] = (
                round(value, 2) if args.value == "distance" else float(f"{value:.4g}")
            )
            seeds.add(int(row["seed"]))
    if args.keep:
        table = json.loads(Path(args.keep).read_text())
        cols = table["columns"]
        kept = []
        for old in table["rows"]:
            rec = dict(zip(cols, old))
            key = (rec["function"], rec["rotated"] == "yes", rec["method"])
            if key[1] and key not in runs:
                runs[key] = {int(c.split()[1]): rec[c] for c in cols if c.startswith("seed ") and rec[c] is not None}
                seeds.update(runs[key])
                kept.append(key)

        def wrote_kept(command: str) -> bool:
            return any(
                f"--functions {fn} " in command and all(part in command for part in label.split())
                for fn, _, label in kept
            )

        commands += [c for c in table["command"] if wrote_kept(c) and c not in commands]
    seeds_sorted = sorted(seeds)
    rows = []
    functions = sorted({k[0] for k in runs})
    if args.unrotated:
        table = json.loads(Path(args.unrotated).read_text())
        cols = table["columns"]
        for old in table["rows"]:
            rec = dict(zip(cols, old))
            if rec["function"] in functions and rec.get("minimum") == "shifted":
                rows.append(
                    [rec["function"], "no", rec["method"]]
                    + [rec.get(f"seed {s}") for s in seeds_sorted]
                    + [rec["median"]]
                )
        commands.append(f"unrotated rows: {args.unrotated}")
    for (fn, rotated, method), per_seed in sorted(runs.items()):
        values = [per_seed.get(s) for s in seeds_sorted]
        done = [v for v in values if v is not None]
        median = statistics.median(done) if done else None
        if median is not None:
            median = round(median, 2) if args.value == "distance" else float(f"{median:.4g}")
        rows.append([fn, "yes" if rotated else "no", method] + values + [median])
    rows.sort(key=lambda r: (r[0], r[1], r[-1] if r[-1] is not None else float("inf")))
    out = {
        "title": args.title,
        "command": commands,
        "date": date.today().isoformat(),
        "commit": git_commit(),
        "machine": args.machine,
        "columns": ["function", "rotated", "method"] + [f"seed {s}" for s in seeds_sorted] + ["median"],
        "rows": rows,
        "notes": (
            (
                "Distance of the returned point to the global minimum (lower is better)"
                if args.value == "distance"
                else "Energy of the returned point (lower is better; the global minimum is 0)"
            )
            + ". Rotated: U(R (x - o)) "
            "with a seeded random orthogonal R about the shifted minimum o, the same box and minimum."
            + (" " + args.note if args.note else "")
        ),
    }
    write_table(args.out, out)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
