"""Minimise a user's protein or peptide PDB with any of the project's methods.

:func:`openmm_actionmin.api.minimize_pdb` is the one-call entry point: prepare the PDB (pdbfixer),
build the OpenMM oracle (nm, kJ/mol), run the chosen method under a wall-clock
budget, and return a :class:`~openmm_actionmin.result.Result` with per-force-group
energies, the RMS force reached and, when a reference is given, the CA RMSD in
Angstrom. ``result.save("out.pdb")`` writes the structure.

Methods (:data:`METHODS`):

* ``"openmm"`` (alias ``"openmm_minimize"``): OpenMM's LocalEnergyMinimizer.
* ``"anneal"`` (alias ``"openmm_anneal"``): Langevin simulated annealing to
  0 K, then the minimiser.
* ``"action"``: the action-functional PLNet trainer
  (:class:`~openmm_actionmin.search.action.ActionTrainer`) in torsion space
  around the input structure (offsets up to ``max_delta_deg``), its best
  candidate and lowest-seen point then polished by the minimiser.
* ``"random_only"``: the same trainer regressing on random samples only (the
  paper's ablation), polished the same way.
* ``"basin_hopping"`` (alias ``"torsion_hopping"``): Monte-Carlo minimisation
  in torsion space (:func:`~openmm_actionmin.search.torsion_hopping.torsion_hopping`):
  pivot moves of backbone phi/psi (Ramachandran basins) and side-chain chi,
  each followed by an OpenMM quench, Metropolis acceptance.
* ``"hybrid"``: the action trainer in torsion space for ``hybrid_fraction`` of
  the budget; its best candidate and lowest-seen point seed torsion hopping
  for the rest.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union

import numpy as np
import torch

from .geometry import kabsch_rmsd
from .progress import budget_bar, show_elapsed
from .result import Result
from .systems.base import System

#: Peptide method names accepted by :func:`run_method` (aliases map to the same runner).
METHODS = (
    "action",
    "random_only",
    "openmm",
    "openmm_minimize",
    "anneal",
    "openmm_anneal",
    "basin_hopping",
    "torsion_hopping",
    "hybrid",
)

_ALIASES = {"openmm": "openmm_minimize", "anneal": "openmm_anneal", "torsion_hopping": "basin_hopping"}

#: Methods whose search runs in a TorsionSpace around the start (see :func:`torsion_system`).
TORSION_SPACE_METHODS = ("action", "random_only", "hybrid")

ReferenceSpec = Union[str, os.PathLike, np.ndarray, torch.Tensor, None]


def canonical_method(method: str) -> str:
    """Map a method name or alias to its canonical name.

    Raises:
        ValueError: unknown method, listing the known ones.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return _ALIASES.get(method, method)


# --------------------------------------------------------------------- RMSD
class CARMSD:
    """CA RMSD (Angstrom) of structures of one topology to a reference.

    Args:
        topology: OpenMM topology of the structures to score.
        reference: A PDB path (CA atoms matched in residue order, waters and
            heterogens ignored), or positions ``[N, 3]`` nm of the same
            topology.

    Raises:
        ValueError: the reference has a different number of CA atoms or a
            different residue sequence (the message names the first mismatch).
    """

    def __init__(self, topology: Any, reference: Union[str, os.PathLike, np.ndarray, torch.Tensor]) -> None:
        import mdtraj as md

        ca = [a for a in topology.atoms() if a.name == "CA"]
        if not ca:
            raise ValueError("CA RMSD: the structure has no CA atoms (is it a protein?)")
        self.ca = np.array([a.index for a in ca], dtype=np.int64)
        if isinstance(reference, (str, os.PathLike)):
            path = Path(reference)
            if not path.exists():
                raise ValueError(f"CA RMSD: reference PDB {path} does not exist")
            ref = md.load_pdb(str(path), frame=0)
            ref_ca = [a for a in ref.topology.atoms if a.name == "CA" and a.residue.is_protein]
            if len(ref_ca) != len(ca):
                raise ValueError(
                    f"CA RMSD: reference {path} has {len(ref_ca)} CA atoms but the structure has {len(ca)}; "
                    "give a reference of the same protein"
                )
            for k, (a, b) in enumerate(zip(ca, ref_ca)):
                if a.residue.name != b.residue.name:
                    raise ValueError(
                        f"CA RMSD: residue {k + 1} is {a.residue.name} in the structure but {b.residue.name} "
                        f"in reference {path}; give a reference of the same sequence"
                    )
            self.ref_xyz = ref.xyz[0][[a.index for a in ref_ca]].astype(np.float64)
            self.source = str(path)
        else:
            arr = reference.detach().cpu().numpy() if isinstance(reference, torch.Tensor) else np.asarray(reference)
            arr = np.asarray(arr, dtype=np.float64)
            if arr.shape != (topology.getNumAtoms(), 3):
                raise ValueError(
                    f"CA RMSD: reference positions must be [{topology.getNumAtoms()}, 3] nm, got {arr.shape}"
                )
            self.ref_xyz = arr[self.ca]
            self.source = "positions"

    def __call__(self, positions: Any) -> float:
        """CA RMSD in Angstrom of ``positions [N, 3]`` nm after optimal superposition "
        "(:func:`~.geometry.kabsch_rmsd`)."""
        pos = positions.detach().cpu().numpy() if isinstance(positions, torch.Tensor) else np.asarray(positions)
        sub = np.asarray(pos, dtype=np.float64).reshape(-1, 3)[self.ca]
        return 10.0 * kabsch_rmsd(sub, self.ref_xyz)

    def observer(self) -> Callable[[np.ndarray], Dict[str, float]]:
        """A history observer adding ``ca_rmsd_A`` to rows."""
        return lambda pos: {"ca_rmsd_A": self(pos)}


# ------------------------------------------------------------------ methods
@dataclasses.dataclass
class PeptideSettings:
    """Options of every peptide method (the ``options`` of a registry run on a peptide).

    Attributes:
        platform: OpenMM platform for quenches and polishing (default: the first that works).
        threads: CPU threads per OpenMM Context.
        tolerance_kj_mol_nm: Minimiser tolerance (RMS force, kJ/mol/nm).
        max_delta_deg: Torsion offsets the action methods search around the
            input, degrees (a molecule whose bond graph is not one chain falls
            back to Cartesian displacements of 0.05 nm).
        action_config: An ``ActionConfig`` for the action methods.
        polish_fraction: Share of the budget kept for polishing the action
            methods' candidates with the minimiser.
        hopping_config: A ``TorsionHoppingConfig`` for ``basin_hopping`` and ``hybrid``.
        hybrid_fraction: Share of the budget the hybrid gives the action trainer.
        rmsd: Optional :class:`CARMSD`; adds ``ca_rmsd_A`` to history rows.
    """

    platform: Optional[str] = None
    threads: Optional[int] = None
    tolerance_kj_mol_nm: float = 1.0
    max_delta_deg: float = 45.0
    action_config: Any = None
    polish_fraction: float = 0.2
    hopping_config: Any = None
    hybrid_fraction: float = 0.3
    rmsd: Any = None


def torsion_system(system: System, max_delta_deg: float = 45.0) -> System:
    """The system searched in torsion offsets up to ``max_delta_deg`` around its start.

    A molecule whose bond graph is not one connected chain falls back to
    Cartesian displacements of 0.05 nm.
    """
    from .spaces import Displacement
    from .torsions import TorsionSpace

    try:
        space = TorsionSpace(system.topology, system.start_positions, max_delta=math.radians(max_delta_deg))
    except ValueError:
        space = Displacement(system.start_positions, 0.05)
    return dataclasses.replace(system, space=space)


def run_method(
    system: System,
    method: str,
    *,
    seed: int = 0,
    budget_s: float = 60.0,
    platform: Optional[str] = None,
    threads: Optional[int] = None,
    tolerance_kj_mol_nm: float = 1.0,
    max_delta_deg: float = 45.0,
    action_config: Any = None,
    polish_fraction: float = 0.2,
    rmsd: Optional[CARMSD] = None,
    progress: bool = False,
    checkpoint_path: Optional[str] = None,
    checkpoint_interval_s: float = 30.0,
    hopping_config: Any = None,
    hybrid_fraction: float = 0.3,
) -> Result:
    """Run one peptide method on an OpenMM-backed System and return its Result.

    The registry's peptide runs come here; the fields after ``budget_s`` are
    those of :class:`PeptideSettings`. The action methods (``action``,
    ``random_only``, ``hybrid``) search torsion offsets around the start
    (:func:`torsion_system`).

    Args:
        system: A System with an OpenMM oracle and start positions.
        method: One of :data:`METHODS`.
        seed: Seed of the method.
        budget_s: Wall-clock budget, seconds (kept by every stage, polish included).
        platform: OpenMM platform for the baselines and polishing.
        threads: CPU threads for the baselines and polishing.
        tolerance_kj_mol_nm: Minimiser tolerance (RMS force).
        max_delta_deg: Torsion offsets of the action methods, degrees.
        action_config: An ``ActionConfig`` for the action methods (its
            ``seed`` and ``budget_s`` are overridden).
        polish_fraction: Share of ``budget_s`` kept for polishing the action
            methods' candidates with the minimiser.
        rmsd: Optional :class:`CARMSD`; adds ``ca_rmsd_A`` to history rows.
        progress: Show a tqdm bar of the wall-clock budget (the action
            methods show the trainer's own bar).
        checkpoint_path: Checkpoint file of the action methods' trainer and of
            torsion hopping (the hybrid's hopping phase uses
            ``checkpoint_path + ".hopping"``); an existing one of the same run
            is resumed. The OpenMM baselines are single short runs and do not
            checkpoint.
        checkpoint_interval_s: Seconds between torsion-hopping checkpoints.
        hopping_config: A ``TorsionHoppingConfig`` for ``basin_hopping`` and
            ``hybrid`` (its ``seed``, ``budget_s``, tolerance, platform,
            threads, progress and checkpoint fields are overridden).
        hybrid_fraction: Share of ``budget_s`` the hybrid gives the action
            trainer; torsion hopping gets the rest.

    Returns:
        The method's :class:`Result` (positions nm, energy kJ/mol).

    Raises:
        ValueError: unknown method.
    """
    from .search.openmm_baselines import AnnealConfig, openmm_anneal, openmm_minimize, polish

    name = canonical_method(method)
    t_start = time.perf_counter()
    if name in TORSION_SPACE_METHODS and type(system.space).__name__ != "TorsionSpace":
        system = torsion_system(system, max_delta_deg)
    observer = rmsd.observer() if rmsd is not None else None
    if name in ("openmm_minimize", "openmm_anneal"):
        bar = budget_bar(budget_s, name) if progress else None
        watched = _advancing(observer, bar)
        try:
            if name == "openmm_minimize":
                return openmm_minimize(
                    system,
                    tolerance_kj_mol_nm=tolerance_kj_mol_nm,
                    budget_s=budget_s,
                    platform=platform,
                    threads=threads,
                    seed=seed,
                    observer=watched,
                )
            cfg = AnnealConfig(budget_s=budget_s, tolerance_kj_mol_nm=tolerance_kj_mol_nm)
            return openmm_anneal(system, config=cfg, seed=seed, platform=platform, threads=threads, observer=watched)
        finally:
            if bar is not None:
                bar.close()
    if name == "basin_hopping":
        hop_cfg = _hopping_config(
            hopping_config,
            seed=seed,
            budget_s=budget_s,
            platform=platform,
            threads=threads,
            tolerance_kj_mol_nm=tolerance_kj_mol_nm,
            progress=progress,
            checkpoint_path=checkpoint_path,
            checkpoint_interval_s=checkpoint_interval_s,
            method_name=name,
        )
        from .search.torsion_hopping import torsion_hopping

        return torsion_hopping(system, hop_cfg, observer=observer)
    if name == "hybrid":
        return _hybrid(
            system,
            seed=seed,
            budget_s=budget_s,
            platform=platform,
            threads=threads,
            tolerance_kj_mol_nm=tolerance_kj_mol_nm,
            action_config=action_config,
            rmsd=rmsd,
            progress=progress,
            checkpoint_path=checkpoint_path,
            hopping_config=hopping_config,
            fraction=hybrid_fraction,
            checkpoint_interval_s=checkpoint_interval_s,
        )
    from .search.action import ActionConfig, ActionTrainer

    train_s = budget_s * (1.0 - polish_fraction)
    if action_config is not None:
        base = action_config
    else:
        base = ActionConfig.random_only() if name == "random_only" else ActionConfig()
        base = dataclasses.replace(base, **_scaled_action_sizes(system, train_s, base))
    cfg = dataclasses.replace(
        base,
        seed=int(seed),
        budget_s=float(train_s),
        method_name=name,
        progress=progress,
        checkpoint_path=checkpoint_path or base.checkpoint_path,
        checkpoint_interval_s=checkpoint_interval_s,
    )
    trainer = ActionTrainer(system, cfg)

    def on_round(row: Dict[str, Any]) -> None:
        if rmsd is not None and trainer.best is not None:
            z = trainer.best["z"].reshape(1, -1).to(dtype=system.space.lower.dtype, device=system.space.lower.device)
            row["ca_rmsd_A"] = rmsd(system.space.to_config(z)[0].detach())

    raw = trainer.run(on_round=on_round)
    lowest = raw.extra.get("lowest_seen_positions")
    also = [lowest] if lowest is not None and raw.extra.get("lowest_seen_energy", math.inf) < math.inf else []
    # the prepared input is polished too, so the result is never above a minimisation of the input
    also.append(system.start_positions.detach().cpu().numpy())
    # Polishing gets what is left of the budget (training stops at its share), so the run
    # keeps budget_s; a floor of half a second lets a short run still take a few steps.
    left = max(budget_s - (time.perf_counter() - t_start), 0.5)
    return polish(
        system,
        raw,
        tolerance_kj_mol_nm=tolerance_kj_mol_nm,
        budget_s=left,
        platform=platform,
        threads=threads,
        also=also,
        observer=observer,
    )


def _hopping_config(base: Any, **fields: Any) -> Any:
    """A ``TorsionHoppingConfig`` from ``base`` (or the defaults) with ``fields`` set."""
    from .search.torsion_hopping import TorsionHoppingConfig

    cfg = base if base is not None else TorsionHoppingConfig()
    fields["budget_s"] = float(fields["budget_s"])
    fields["seed"] = int(fields["seed"])
    fields["tolerance_kj_mol_nm"] = float(fields.pop("tolerance_kj_mol_nm"))
    ckpt = fields.pop("checkpoint_path")
    if ckpt:
        fields.update(checkpoint_path=str(ckpt), resume=True)
    return dataclasses.replace(cfg, **fields)


def _hybrid(
    system: System,
    *,
    seed: int,
    budget_s: float,
    platform: Optional[str],
    threads: Optional[int],
    tolerance_kj_mol_nm: float,
    action_config: Any,
    rmsd: Optional[CARMSD],
    progress: bool,
    checkpoint_path: Optional[str],
    hopping_config: Any,
    fraction: float,
    checkpoint_interval_s: float = 30.0,
) -> Result:
    """The action trainer for ``fraction`` of the budget, then torsion hopping from its candidates.

    The trainer's best candidate, its lowest-seen point (positions
    ``[N, 3]`` nm) and the system's own start structure (the user's input) are
    the starts of torsion hopping, which quenches all of them and walks from
    the lowest, so the hybrid never ends above a quench of the input. History,
    force calls and wall time are those of both phases together (the hopping
    rows shifted by the trainer's). The one hybrid of the package,
    :func:`~openmm_actionmin.search.hybrid.hybrid`, runs both phases.
    """
    from .search.action import ActionConfig
    from .search.hybrid import hybrid
    from .search.torsion_hopping import torsion_hopping

    if not (0.0 < fraction < 1.0):
        raise ValueError(f"hybrid_fraction must be in (0, 1), got {fraction}")
    t0 = time.perf_counter()
    base = action_config if action_config is not None else ActionConfig()
    if action_config is None:
        base = dataclasses.replace(base, **_scaled_action_sizes(system, budget_s * fraction, base))
    base = dataclasses.replace(
        base,
        progress=progress,
        checkpoint_path=checkpoint_path or base.checkpoint_path,
        checkpoint_interval_s=checkpoint_interval_s,
    )
    observer = rmsd.observer() if rmsd is not None else None

    def hop(starts: list, left_s: float) -> Result:
        hop_cfg = _hopping_config(
            hopping_config,
            seed=seed,
            budget_s=left_s,
            platform=platform,
            threads=threads,
            tolerance_kj_mol_nm=tolerance_kj_mol_nm,
            progress=progress,
            checkpoint_path=f"{checkpoint_path}.hopping" if checkpoint_path else None,
            checkpoint_interval_s=checkpoint_interval_s,
            method_name="hybrid",
        )
        return torsion_hopping(system, hop_cfg, starts=starts, observer=observer)

    left = max(budget_s - (time.perf_counter() - t0), 0.5)  # sizing the trainer counts against the budget
    res = hybrid(system, base, hop, budget_s=left, seed=seed, fraction=fraction, action_history=True)
    res.wall_s = time.perf_counter() - t0
    return res


def _advancing(
    observer: Optional[Callable[[np.ndarray], Dict[str, float]]], bar
) -> Optional[Callable[[np.ndarray], Dict[str, float]]]:
    """Wrap a history observer so that every recorded row also advances ``bar`` (if any)."""
    if bar is None:
        return observer

    def observe(positions: np.ndarray) -> Dict[str, float]:
        show_elapsed(bar, time.perf_counter() - bar.t0)
        return observer(positions) if observer is not None else {}

    return observe


def _scaled_action_sizes(system: System, train_s: float, base: Any) -> Dict[str, int]:
    """Sample counts of the action trainer scaled to the oracle's measured speed.

    The trainer evaluates ``warm_start_samples`` configurations once and
    ``max_path_points + fresh_batch`` every round, whatever the budget; a
    large protein in implicit solvent costs tens of milliseconds per
    evaluation, so the defaults would overrun any short budget. A timed batch
    of 8 start-neighbourhood samples (counted as force calls) caps the warm
    start at about a quarter of the training time and one round's evaluations
    at about a tenth of it. Fast oracles keep the defaults.
    """
    gen = torch.Generator().manual_seed(0)
    z = system.space.sample(8, gen)
    t0 = time.perf_counter()
    system.oracle.energy(system.space.to_config(z).detach(), transform=None)
    rate = 8.0 / max(time.perf_counter() - t0, 1e-6)
    warm = int(min(base.warm_start_samples, max(16, 0.25 * train_s * rate)))
    per_round = min(base.max_path_points + base.fresh_batch, max(8.0, 0.1 * train_s * rate))
    share = base.max_path_points / max(base.max_path_points + base.fresh_batch, 1)
    return {
        "warm_start_samples": warm,
        "warm_start_batch": min(base.warm_start_batch, warm),
        "max_path_points": int(min(base.max_path_points, max(4, share * per_round))),
        "fresh_batch": int(min(base.fresh_batch, max(4, (1 - share) * per_round))),
    }
