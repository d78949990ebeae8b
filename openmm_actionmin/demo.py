"""The README's main job: evaluate and locally minimise LJ13 and a peptide.

Run as ``actionmin demo`` (or ``python -m openmm_actionmin.demo``).
"""

from __future__ import annotations

from typing import Optional

import torch

from .data import data_path


def run_demo(seed: int = 0, peptide_pdb: Optional[str] = None, n_starts: int = 16) -> dict:
    """Evaluate and locally minimise LJ13 and a peptide, printing energies.

    Args:
        seed: Seed of the LJ13 random starts.
        peptide_pdb: PDB of the peptide (default: the shipped CLN025, 5AWL).
        n_starts: LJ13 random starts minimised as one batch.

    Returns:
        ``{"lj13_start": float, "lj13_min": float, "lj13_reference": float,
        "peptide_start_kj_mol": float, "peptide_min_kj_mol": float,
        "peptide_rms_force": float}``.
    """
    from .search.local import minimize_batch
    from .search.openmm_baselines import openmm_minimize
    from .systems import from_pdb, lj_cluster

    out = {}
    lj = lj_cluster(13)
    gen = torch.Generator().manual_seed(seed)
    x0 = lj.space.to_config(lj.space.sample(n_starts, gen))
    e0 = lj.oracle.energy(x0)
    local = minimize_batch(lj.oracle, x0, "lbfgs", fmax=1e-6, seed=seed)
    best = int(torch.argmin(local.energy))
    out.update(
        lj13_start=float(e0.min()), lj13_min=float(local.energy[best]), lj13_reference=float(lj.reference_energy)
    )
    print(
        f"LJ13 ({lj.oracle.units.energy}): {n_starts} random starts in a cube of side {float(lj.space.width[0]):.2f} "
        "sigma"
    )
    print(f"  lowest start energy        {out['lj13_start']:14.6f}")
    print(f"  lowest local minimum       {out['lj13_min']:14.6f}   (L-BFGS, max |F| {float(local.fmax[best]):.1e})")
    print(f"  reference global minimum   {out['lj13_reference']:14.6f}   (Cambridge Cluster Database)")
    print(f"  starts that reached it     {int((local.energy - lj.reference_energy).abs().lt(1e-4).sum())}/{n_starts}")

    path = peptide_pdb or str(data_path("systems", "pdb", "5awl_cln025.pdb"))
    pep = from_pdb(path)
    start = pep.start_positions if pep.start_positions is not None else pep.reference_positions
    e_start = float(pep.oracle.energy(start[None])[0])
    res = openmm_minimize(pep, start, tolerance_kj_mol_nm=1.0)
    out.update(
        peptide_start_kj_mol=e_start,
        peptide_min_kj_mol=float(res.energy),
        peptide_rms_force=float(res.extra.get("final_rms_force", float("nan"))),
    )
    print(
        f"\nPeptide {path} ({pep.oracle.n_atoms} atoms, {pep.metadata.get('forcefield', 'amber14-all.xml')}, solvent "
        f"{pep.metadata.get('solvent', 'obc2')}):"
    )
    print(f"  energy as prepared         {e_start:14.3f} kJ/mol")
    print(
        f"  after OpenMM minimisation  {out['peptide_min_kj_mol']:14.3f} kJ/mol   (RMS force "
        f"{out['peptide_rms_force']:.2f} kJ/mol/nm, {res.force_calls} force calls)"
    )
    return out


if __name__ == "__main__":
    run_demo()
