"""Oracle throughput: torch LJ38 vs ASE, OpenMM Trp-cage per evaluation, Context pool speed-up.

Measures (energy + forces every time, wall clock, best of repeats):

1. LJ38 evaluations per second through the batched torch oracle
   (:func:`~openmm_actionmin.oracles.pair.lennard_jones`, batch 1024) against a
   Python loop over ``ase.calculators.lj.LennardJones(rc=1e3)``, and their
   ratio (goal: >= 100x).
2. Milliseconds per Trp-cage (1L2Y, 304 atoms, amber14-all, NoCutoff)
   evaluation on the OpenMM CPU platform with one thread: vacuum, implicit
   solvent through ``implicit/obc2.xml`` (CustomGBForce) and the same OBC2
   model through the native ``GBSAOBCForce``.
3. A batch of Trp-cage configurations through a pool of 2 Contexts (1 thread
   each) against one Context (1 thread): ``pool_over_single`` is the speed-up
   (single time / pool time).

Timings depend on machine load (the development machine has 2 cores shared by
several people); compare ratios, not absolutes. ``--json FILE`` writes
``{"lj38_torch_over_ase": float, "trpcage_ms": {"vacuum": float, "xml_gb": float,
"native_gb": float}, "pool_over_single": float}`` atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch


@dataclasses.dataclass
class OracleBenchConfig:
    """Settings of :func:`run_oracle_bench`.

    Attributes:
        lj_atoms: Atoms of the LJ cluster.
        lj_batch: Batch size of the torch LJ evaluation.
        ase_evals: Single evaluations timed in the ASE loop.
        trpcage_batch: Configurations per timed OpenMM call for the ms/eval
            figures.
        pool_batch: Configurations in the pool-vs-single comparison.
        pool_solvent: Solvent model of the pool comparison (``"obc2"``,
            ``"none"``, ...).
        repeats: Timed repetitions (the best is reported).
        torch_threads: Torch intra-op threads for the LJ timing.
        seed: Seed of the random configurations.
        json: Optional path of the JSON summary.
    """

    lj_atoms: int = 38
    lj_batch: int = 1024
    ase_evals: int = 200
    trpcage_batch: int = 16
    pool_batch: int = 64
    pool_solvent: str = "obc2"
    repeats: int = 3
    torch_threads: int = 1
    seed: int = 0
    json: Optional[str] = None


def _best_time(fn: Callable[[], object], repeats: int) -> float:
    """Best wall-clock seconds of ``fn`` over ``repeats`` runs (after one warm-up)."""
    fn()
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def lj_configs(n_atoms: int, batch: int, seed: int) -> torch.Tensor:
    """Random LJ configurations ``[batch, n_atoms, 3]``: a jittered cubic lattice, sigma units."""
    g = torch.Generator().manual_seed(seed)
    side = int(np.ceil(n_atoms ** (1.0 / 3.0)))
    grid = torch.stack(torch.meshgrid(*[torch.arange(side, dtype=torch.float64)] * 3, indexing="ij"), -1)
    lattice = grid.reshape(-1, 3)[:n_atoms] * 1.1
    return lattice[None] + 0.1 * torch.randn(batch, n_atoms, 3, generator=g, dtype=torch.float64)


def bench_lj(cfg: OracleBenchConfig) -> Dict[str, float]:
    """Torch LJ (batched) vs ASE LennardJones (loop), evaluations per second."""
    from ase import Atoms
    from ase.calculators.lj import LennardJones

    from ..oracles.pair import lennard_jones

    x = lj_configs(cfg.lj_atoms, cfg.lj_batch, cfg.seed)
    oracle = lennard_jones(cfg.lj_atoms)
    t_torch = _best_time(lambda: oracle.energy_and_forces(x), cfg.repeats)
    torch_rate = cfg.lj_batch / t_torch

    atoms = Atoms(f"Ar{cfg.lj_atoms}", positions=x[0].numpy())
    atoms.calc = LennardJones(sigma=1.0, epsilon=1.0, rc=1e3)
    xs = x[: cfg.ase_evals].numpy()

    def ase_loop() -> None:
        for i in range(len(xs)):
            atoms.positions = xs[i]
            atoms.get_potential_energy()
            atoms.get_forces()

    t_ase = _best_time(ase_loop, max(1, cfg.repeats - 1))
    ase_rate = len(xs) / t_ase
    # the two must compute the same thing
    atoms.positions = xs[0]
    e_ase = float(atoms.get_potential_energy())
    e_torch = float(oracle.energy(x[:1])[0])
    return {
        "torch_evals_per_s": torch_rate,
        "ase_evals_per_s": ase_rate,
        "ratio": torch_rate / ase_rate,
        "energy_abs_diff": abs(e_ase - e_torch),
    }


def _trpcage_oracle(solvent: str, n_contexts: int = 1):
    from ..data import data_path
    from ..oracles.openmm import OpenMMOracle

    path = data_path("systems", "pdb", "1l2y_trpcage_model1.pdb")
    return OpenMMOracle.from_pdb(path, solvent=solvent, platform="CPU", n_contexts=n_contexts, threads_per_context=1)


def near_start(oracle, batch: int, seed: int) -> torch.Tensor:
    """Configurations ``[batch, N, 3]`` (nm): the oracle's prepared start plus Gaussian noise of 0.01 nm."""
    g = torch.Generator().manual_seed(seed)
    return oracle.positions[None] + 0.01 * torch.randn(
        (batch,) + tuple(oracle.positions.shape), generator=g, dtype=torch.float64
    )


def bench_trpcage(cfg: OracleBenchConfig) -> Dict[str, float]:
    """Milliseconds per Trp-cage evaluation on CPU (1 thread): vacuum, XML OBC2, native OBC2."""
    out = {}
    for key, solvent in (("vacuum", "none"), ("xml_gb", "obc2-xml"), ("native_gb", "obc2")):
        oracle = _trpcage_oracle(solvent)
        x = near_start(oracle, cfg.trpcage_batch, cfg.seed)
        seconds = _best_time(lambda: oracle.energy_and_forces(x), cfg.repeats)
        out[key] = 1e3 * seconds / cfg.trpcage_batch
        oracle.close()
    return out


def bench_pool(cfg: OracleBenchConfig) -> Dict[str, float]:
    """One Context vs a pool of 2 (1 thread each) on a batch of Trp-cage configurations."""
    single = _trpcage_oracle(cfg.pool_solvent, n_contexts=1)
    pool = _trpcage_oracle(cfg.pool_solvent, n_contexts=2)
    x = near_start(single, cfg.pool_batch, cfg.seed + 1)
    t_single = _best_time(lambda: single.energy_and_forces(x), cfg.repeats)
    t_pool = _best_time(lambda: pool.energy_and_forces(x), cfg.repeats)
    same = bool(torch.equal(single.energy(x), pool.energy(x)))
    single.close()
    pool.close()
    return {"single_s": t_single, "pool_s": t_pool, "ratio": t_single / t_pool, "identical": float(same)}


def run_oracle_bench(args: Union[OracleBenchConfig, argparse.Namespace]) -> dict:
    """Run the oracle benchmarks, print a table, optionally write JSON.

    Args:
        args: An :class:`OracleBenchConfig` or an ``argparse.Namespace`` with
            the same field names.

    Returns:
        ``{"lj38_torch_over_ase": float, "trpcage_ms": {"vacuum": float,
        "xml_gb": float, "native_gb": float}, "pool_over_single": float}``.
    """
    if isinstance(args, OracleBenchConfig):
        cfg = args
    else:
        names = {f.name for f in dataclasses.fields(OracleBenchConfig)}
        cfg = OracleBenchConfig(**{k: v for k, v in vars(args).items() if k in names})
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.torch_threads)
    try:
        lj = bench_lj(cfg)
        trp = bench_trpcage(cfg)
        pool = bench_pool(cfg)
    finally:
        torch.set_num_threads(previous_threads)

    rows: List[Sequence[str]] = [
        (f"LJ{cfg.lj_atoms} torch, batch {cfg.lj_batch}", f"{lj['torch_evals_per_s']:,.0f} evals/s"),
        (f"LJ{cfg.lj_atoms} ASE LennardJones(rc=1e3) loop", f"{lj['ase_evals_per_s']:,.0f} evals/s"),
        ("  torch / ASE", f"{lj['ratio']:.0f}x (goal >= 100x; |dE| = {lj['energy_abs_diff']:.1e})"),
        ("Trp-cage CPU 1 thread, vacuum", f"{trp['vacuum']:.3f} ms/eval"),
        ("Trp-cage CPU 1 thread, OBC2 XML (CustomGBForce)", f"{trp['xml_gb']:.3f} ms/eval"),
        ("Trp-cage CPU 1 thread, OBC2 native (GBSAOBCForce)", f"{trp['native_gb']:.3f} ms/eval"),
        ("  XML / native", f"{trp['xml_gb'] / trp['native_gb']:.1f}x"),
        (f"Trp-cage {cfg.pool_solvent}, {cfg.pool_batch} configs, 1 Context", f"{1e3 * pool['single_s']:.1f} ms"),
        (f"Trp-cage {cfg.pool_solvent}, {cfg.pool_batch} configs, pool of 2", f"{1e3 * pool['pool_s']:.1f} ms"),
        ("  pool / single speed-up", f"{pool['ratio']:.2f}x (results identical: {bool(pool['identical'])})"),
    ]
    width = max(len(r[0]) for r in rows)
    print("oracle benchmark (wall clock, best of repeats; machine load makes absolutes noisy)")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")

    summary = {
        "lj38_torch_over_ase": float(lj["ratio"]),
        "trpcage_ms": {
            "vacuum": float(trp["vacuum"]),
            "xml_gb": float(trp["xml_gb"]),
            "native_gb": float(trp["native_gb"]),
        },
        "pool_over_single": float(pool["ratio"]),
    }
    if cfg.json:
        from ..fileio import atomic_write_text

        atomic_write_text(cfg.json, json.dumps(summary, indent=2) + "\n")
        print(f"wrote {cfg.json}")
    return summary


def build_parser() -> argparse.ArgumentParser:
    """Command-line parser of the oracle benchmark."""
    defaults = OracleBenchConfig()
    parser = argparse.ArgumentParser(
        prog="actionmin bench oracles",
        description=__doc__.splitlines()[0],
        epilog="example:\n  actionmin bench oracles --lj-batch 64 --ase-evals 5 --trpcage-batch 2 --pool-batch 4 "
        "--repeats 1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--lj-atoms", dest="lj_atoms", type=int, default=defaults.lj_atoms)
    parser.add_argument("--lj-batch", dest="lj_batch", type=int, default=defaults.lj_batch)
    parser.add_argument("--ase-evals", dest="ase_evals", type=int, default=defaults.ase_evals)
    parser.add_argument("--trpcage-batch", dest="trpcage_batch", type=int, default=defaults.trpcage_batch)
    parser.add_argument("--pool-batch", dest="pool_batch", type=int, default=defaults.pool_batch)
    parser.add_argument(
        "--pool-solvent",
        dest="pool_solvent",
        default=defaults.pool_solvent,
        choices=["obc2", "obc2-xml", "gbn2", "none"],
    )
    parser.add_argument("--repeats", type=int, default=defaults.repeats)
    parser.add_argument("--torch-threads", dest="torch_threads", type=int, default=defaults.torch_threads)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--json", default=None, help="write the summary JSON here (atomic write)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Parse ``argv`` and run :func:`run_oracle_bench`."""
    return run_oracle_bench(build_parser().parse_args(argv))


__all__ = ["OracleBenchConfig", "bench_lj", "bench_pool", "bench_trpcage", "build_parser", "main", "run_oracle_bench"]
