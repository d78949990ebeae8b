"""Peptides from sequence, user PDBs, and the OpenMM minimiser / annealing baselines."""

import math

import numpy as np
import pytest
import torch

from openmm_actionmin import data_path
from openmm_actionmin.search.openmm_baselines import (
    AnnealConfig,
    group_energies,
    openmm_anneal,
    openmm_minimize,
    resolve_target,
)
from openmm_actionmin.systems import from_pdb, peptide
from openmm_actionmin.systems.peptides import build_heavy_atom_pdb
from openmm_actionmin.torsions import TorsionSpace, backbone_dihedrals

CLN025 = "YYDPETGTWY"


@pytest.fixture(scope="module")
def cln025():
    return peptide(CLN025, threads_per_context=1)


def test_peptide_from_sequence_has_hydrogens_oxt_and_finite_energy(cln025):
    atoms = list(cln025.topology.atoms())
    residues = list(cln025.topology.residues())
    assert "".join(r.name[:3] for r in residues) == "TYRTYRASPPROGLUTHRGLYTHRTRPTYR"
    assert sum(a.name == "OXT" for a in atoms) == 1
    assert next(a for a in atoms if a.name == "OXT").residue.index == 9
    assert sum(a.element.symbol == "H" for a in atoms) > 60
    assert {"H", "H2", "H3"} <= {a.name for a in residues[0].atoms()}  # charged N terminus (NH3+)
    assert cln025.oracle.n_atoms == len(atoms) == len(cln025.symbols)
    energy = cln025.oracle.energy(cln025.start_positions[None], transform=None)
    assert torch.isfinite(energy).all() and float(energy[0]) < 0.0
    assert isinstance(cln025.space, TorsionSpace)
    assert cln025.space.kinds().count("phi") == 8
    # moves in torsion space give finite energies
    z = cln025.space.sample(3, torch.Generator().manual_seed(0)) * 0.05
    assert torch.isfinite(cln025.oracle.energy(cln025.space.to_config(z))).all()


def test_seeded_start_perturbation_is_reproducible():
    a = peptide("GYG", seed=3, solvent="none", threads_per_context=1)
    b = peptide("GYG", seed=3, solvent="none", threads_per_context=1)
    c = peptide("GYG", seed=4, solvent="none", threads_per_context=1)
    plain = peptide("GYG", solvent="none", threads_per_context=1)
    assert torch.equal(a.start_positions, b.start_positions)
    assert not torch.allclose(a.start_positions, c.start_positions)
    dphi = np.array([p for p, _ in backbone_dihedrals(a.topology, a.start_positions)[1:]]) - np.array(
        [p for p, _ in backbone_dihedrals(plain.topology, plain.start_positions)[1:]]
    )
    assert 0 < np.abs(dphi).max() <= 20.0 + 1e-6
    assert a.metadata["seed"] == 3 and a.metadata["sequence"] == "GYG"


def test_helix_conformation_and_bad_sequences():
    text = build_heavy_atom_pdb("AAAAA", "helix")
    from io import StringIO

    from openmm.app import PDBFile

    pdb = PDBFile(StringIO(text))
    dih = backbone_dihedrals(pdb.topology, np.asarray(pdb.getPositions(asNumpy=True)._value))
    assert all(abs(phi + 57.0) < 0.5 for phi, _ in dih[1:])
    with pytest.raises(ValueError, match=r"letter 'X' at position 3"):
        peptide("AAX")
    with pytest.raises(ValueError, match="one \\(phi, psi\\) pair in degrees per residue: 3"):
        build_heavy_atom_pdb("AAA", [(-60.0, -45.0)])
    with pytest.raises(ValueError, match="unknown peptide conformation 'sheet'"):
        build_heavy_atom_pdb("AAA", "sheet")


def test_from_pdb_keeps_the_native_as_reference():
    system = from_pdb(data_path("systems", "pdb", "5awl_cln025.pdb"), threads_per_context=1)
    assert system.name == "5awl_cln025"
    assert torch.equal(system.reference_positions, system.start_positions)
    assert system.oracle.n_atoms == 166  # same atoms as the peptide built from sequence (waters removed)
    assert torch.isfinite(system.oracle.energy(system.start_positions[None])).all()


def test_openmm_minimize_lowers_energy_and_reports_rms_force(cln025):
    res = openmm_minimize(cln025, tolerance_kj_mol_nm=10.0, threads=1, record_every=5)
    start = float(cln025.oracle.energy(cln025.start_positions[None], transform=None)[0])
    assert res.extra["start_energy"] == pytest.approx(start, abs=1e-2)
    assert res.energy < start - 100.0
    # the energy and the RMS force reported are those of the returned positions
    e, f = cln025.oracle.energy_and_forces(torch.as_tensor(res.positions)[None], transform=None)
    assert float(e[0]) == pytest.approx(res.energy, abs=1e-2)
    rms = float(torch.sqrt((f[0] ** 2).sum() / f.shape[1]))
    assert res.extra["final_rms_force"] == pytest.approx(rms, rel=1e-3)
    assert res.extra["final_rms_force"] < res.extra["start_rms_force"]
    assert res.force_calls == res.extra["iterations"] + 2 > 10
    assert res.history[0]["phase"] == "start" and res.history[-1]["phase"] == "end"
    assert any(h["phase"] == "minimize" for h in res.history)
    groups = group_energies(cln025, res.positions)
    assert {"HarmonicBondForce", "NonbondedForce", "GBSAOBCForce"} <= set(groups)
    assert sum(groups.values()) == pytest.approx(res.energy, abs=0.05)
    with pytest.raises(ValueError, match="must be a positive force"):
        openmm_minimize(cln025, tolerance_kj_mol_nm=0.0)
    with pytest.raises(ValueError, match=r"must be \[166, 3\] nm"):
        openmm_minimize(cln025, positions=np.zeros((5, 3)))
    with pytest.raises(TypeError, match="cannot run OpenMM baselines on str"):
        resolve_target("cln025")


def test_openmm_anneal_is_seeded_and_returns_a_minimised_structure():
    system = peptide("GYG", solvent="none", threads_per_context=1)
    cfg = AnnealConfig(budget_s=30.0, t_start_k=500.0, steps_per_cycle=400, chunk_steps=100, cycles=2)
    a = openmm_anneal(system, config=cfg, seed=1, platform="Reference")
    b = openmm_anneal(system, config=cfg, seed=1, platform="Reference")
    start = float(system.oracle.energy(system.start_positions[None], transform=None)[0])
    assert a.method == "openmm_anneal" and a.extra["cycles"] == 2 and a.extra["md_steps"] == 800
    assert a.energy < start
    assert a.energy == min(a.extra["cycle_energies"])
    assert a.energy == pytest.approx(b.energy, abs=1e-6)  # Reference platform, same seed
    assert a.force_calls > 800
    temps = [h["temperature_k"] for h in a.history if h["phase"] == "anneal0"]
    assert temps[0] == pytest.approx(500.0) and all(t1 <= t0 for t0, t1 in zip(temps, temps[1:]))
    e = float(system.oracle.energy(torch.as_tensor(a.positions)[None], transform=None)[0])
    assert e == pytest.approx(a.energy, abs=1e-3)
    assert math.isfinite(a.extra["final_rms_force"])
    with pytest.raises(ValueError, match="minimize_fraction"):
        AnnealConfig(minimize_fraction=1.0)
