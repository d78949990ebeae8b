"""GPU against CPU, measured in one process: trainer rounds, oracle throughput, equal-budget quality.

Run on a machine with a CUDA device (``python bench/gpu.py --json FILE``); every
figure is printed as a ratio against the CPU run of the same work in the same
process:

1. **Trainer rounds**: seconds per round of the registry's ``action`` method
   (function settings :data:`~..search.action_config.SYNTHETIC_ACTION`) on a shifted synthetic
   function, for each dimension, on the CPU with 1 thread (the setting of every
   CPU benchmark of this project), on the CPU with all cores, and on CUDA. The
   rounds after the warm start are timed; the warm start is reported apart.
2. **Oracles**: evaluations per second (energy and forces) of the torch LJ38
   oracle (batch ``lj_batch``) on CPU and CUDA, and of OpenMM Trp-cage (native
   OBC2) on the CPU platform (all cores, one Context) against CUDA Context
   pools of several sizes (each ``DeviceIndex`` round-robin over the GPUs).
3. **Equal budget** (``--budget-s S``): the ``action`` method on CPU (1 thread)
   and on CUDA with the same wall-clock budget and seed, distance to the
   minimum and rounds done.

Output: a printed table per part and, with ``--json FILE``, one JSON object
``{"rounds": [...], "oracles": {...}, "budget": [...], "device_name": str}``,
written atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from ..fileio import atomic_write_text
from ..search.local import torch_threads
from .oracles import _best_time, lj_configs, near_start
from .synthetic import evaluate_run, make_system, run_method


def _synced(fn: Callable[[], object]) -> Callable[[], None]:
    """``fn`` followed by a wait for the GPU, so that a timer sees the whole of its work."""

    def run() -> None:
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    return run


def _best_rate(fn: Callable[[], object], n: int, repeats: int) -> float:
    """Best of ``repeats`` evaluations per second of ``fn`` (which evaluates ``n`` configurations)."""
    return n / _best_time(_synced(fn), repeats)


def _settings(devices: Sequence[str]) -> List[Dict[str, Any]]:
    """(device, torch threads) pairs: CPU with 1 thread, CPU with every core, then each other device."""
    out: List[Dict[str, Any]] = []
    for device in devices:
        if device == "cpu":
            out.append({"device": "cpu", "threads": 1})
            if (os.cpu_count() or 1) > 1:
                out.append({"device": "cpu", "threads": os.cpu_count()})
        else:
            out.append({"device": device, "threads": 1})
    return out


def bench_rounds(
    function: str,
    dims: Sequence[int],
    rounds: int,
    devices: Sequence[str],
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> List[Dict[str, Any]]:
    """Seconds per trainer round and of the warm start, per (dimension, device, threads)."""
    rows = []
    for dim in dims:
        base = None
        for setting in _settings(devices):
            system = make_system(function, dim, seed, device=setting["device"])
            with torch_threads(setting["threads"]):
                result = run_method("action", system, 3600.0, seed, max_rounds=rounds)
            history = result.history
            warm = float(history[0]["wall_s"])
            per_round = (float(history[-1]["wall_s"]) - warm) / max(1, len(history) - 1)
            row = {
                "function": function,
                "dim": dim,
                **setting,
                "rounds": len(history) - 1,
                "warm_start_s": warm,
                "s_per_round": per_round,
                "best_distance": float(history[-1]["best_distance"]),
            }
            base = base or row
            row["speedup_vs_cpu1"] = base["s_per_round"] / per_round
            rows.append(row)
            log(
                f"rounds  D={dim:5d} {setting['device']:5s} threads={setting['threads']:3d} warm={warm:7.2f} s "
                f"round={1e3 * per_round:8.2f} ms  x{row['speedup_vs_cpu1']:.2f} vs cpu/1  "
                f"best distance after {row['rounds']} rounds {row['best_distance']:.2f}"
            )
    return rows


def bench_oracles(
    lj_batch: int = 4096,
    trpcage_batch: int = 256,
    pools: Sequence[int] = (1, 2, 4),
    repeats: int = 3,
    log: Callable[[str], None] = print,
) -> Dict[str, Any]:
    """Evaluations per second of the torch LJ38 and the OpenMM Trp-cage oracles, CPU against CUDA."""
    from ..oracles.pair import lennard_jones

    out: Dict[str, Any] = {}
    x = lj_configs(38, lj_batch, 0)
    cpu = lennard_jones(38)
    with torch_threads(os.cpu_count()):
        cpu_rate = _best_rate(lambda: cpu.energy_and_forces(x), lj_batch, repeats)
    out["lj38_cpu_evals_per_s"] = cpu_rate
    if torch.cuda.is_available():
        gpu = lennard_jones(38, device="cuda")
        xg = x.to("cuda")
        gpu_rate = _best_rate(lambda: gpu.energy_and_forces(xg), lj_batch, repeats)
        out["lj38_cuda_evals_per_s"] = gpu_rate
        out["lj38_cuda_over_cpu"] = gpu_rate / cpu_rate
        out["lj38_max_abs_energy_diff"] = float((gpu.energy(xg).cpu() - cpu.energy(x)).abs().max())
        log(
            f"oracle  LJ38 batch {lj_batch}: cpu ({os.cpu_count()} threads) {cpu_rate:.0f}/s, cuda {gpu_rate:.0f}/s, "
            f"x{gpu_rate / cpu_rate:.1f}"
        )
    try:
        from ..data import data_path
        from ..oracles.openmm import OpenMMOracle, available_platforms
    except ImportError as exc:  # pragma: no cover - OpenMM missing
        out["openmm_error"] = str(exc)
        return out
    path = data_path("systems", "pdb", "1l2y_trpcage_model1.pdb")
    ref = OpenMMOracle.from_pdb(path, solvent="obc2", platform="CPU", n_contexts=1, threads_per_context=os.cpu_count())
    xt = near_start(ref, trpcage_batch, 1)
    cpu_rate = _best_rate(lambda: ref.energy_and_forces(xt), trpcage_batch, repeats)
    out["trpcage_cpu_evals_per_s"] = cpu_rate
    log(f"oracle  Trp-cage OBC2 batch {trpcage_batch}: OpenMM CPU ({os.cpu_count()} threads) {cpu_rate:.0f}/s")
    if "CUDA" not in available_platforms():
        out["openmm_cuda"] = f"no CUDA platform: {available_platforms()}"
        log(f"oracle  OpenMM has no CUDA platform here: {available_platforms()}")
        return out
    e_cpu = ref.energy(xt[:8], transform=None)
    for k in pools:
        pool = OpenMMOracle.from_pdb(path, solvent="obc2", platform="CUDA", n_contexts=k)
        rate = _best_rate(lambda: pool.energy_and_forces(xt), trpcage_batch, repeats)
        diff = float((pool.energy(xt[:8], transform=None).cpu() - e_cpu).abs().max())
        out[f"trpcage_cuda_pool{k}_evals_per_s"] = rate
        out[f"trpcage_cuda_pool{k}_over_cpu"] = rate / cpu_rate
        out[f"trpcage_cuda_pool{k}_max_abs_energy_diff"] = diff
        log(
            f"oracle  Trp-cage OBC2: CUDA pool of {k} Contexts {rate:.0f}/s, x{rate / cpu_rate:.1f} vs CPU; "
            f"max |E_cuda - E_cpu| = {diff:.2e} kJ/mol"
        )
        pool.close()
    ref.close()
    return out


def bench_budget(
    functions: Sequence[str], dim: int, budget_s: float, seed: int = 0, log: Callable[[str], None] = print
) -> List[Dict[str, Any]]:
    """The ``action`` method on CPU (1 thread) and on CUDA with the same budget and seed."""
    rows = []
    for function in functions:
        for device in ("cpu", "cuda"):
            system = make_system(function, dim, seed, device=device)
            with torch_threads(1 if device == "cpu" else None):
                result = run_method("action", system, budget_s, seed)
            row = evaluate_run(system, result, function=function, dim=dim, seed=seed, shifted=True)
            row["device"] = device
            rows.append(row)
            log(
                f"budget  {function} D={dim} {device:4s} {budget_s:.0f} s: distance {row['distance']:.2f} "
                f"energy {row['energy']:.4g} rounds {row['rounds']} calls {row['force_calls']}"
            )
    return rows


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``bench/gpu.py``."""
    p = argparse.ArgumentParser(
        prog="bench/gpu.py",
        description=__doc__.splitlines()[0],
        epilog="example (on a CUDA machine):\n  python bench/gpu.py --dims 100 --rounds 5 --skip oracles",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--function", default="alpine1", help="function of the rounds timing")
    p.add_argument("--dims", default="100,1000", help="dimensions of the rounds timing")
    p.add_argument("--rounds", type=int, default=40, help="rounds timed after the warm start")
    p.add_argument("--budget-s", type=float, default=0.0, help="equal-budget comparison, seconds per run (0: skip)")
    p.add_argument("--budget-functions", default="alpine1,schaffer_f7")
    p.add_argument("--budget-dim", type=int, default=1000)
    p.add_argument("--pools", default="1,2,4", help="OpenMM CUDA Context pool sizes")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: rounds, oracles")
    p.add_argument("--json", default=None, help="write the results here (atomically)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the GPU benchmark; returns the exit code (2 without a CUDA device)."""
    args = build_parser().parse_args(argv)
    if not torch.cuda.is_available():
        print("error: torch sees no CUDA device; this benchmark compares CPU against CUDA", file=sys.stderr)
        return 2
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    out: Dict[str, Any] = {
        "device_name": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "command": "bench/gpu.py " + " ".join(argv or sys.argv[1:]),
    }

    def save() -> None:
        if args.json:
            atomic_write_text(args.json, json.dumps(out, indent=1))

    print(f"{out['device_name']}, torch {torch.__version__}, {os.cpu_count()} CPUs")
    if "rounds" not in skip:
        out["rounds"] = bench_rounds(
            args.function, [int(d) for d in args.dims.split(",")], args.rounds, ["cpu", "cuda"]
        )
        save()
    if "oracles" not in skip:
        out["oracles"] = bench_oracles(pools=[int(k) for k in args.pools.split(",")])
        save()
    if args.budget_s > 0:
        out["budget"] = bench_budget(
            [f.strip() for f in args.budget_functions.split(",")], args.budget_dim, args.budget_s
        )
        save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
