"""Structure identity and export: fingerprints, RMSD, XYZ/PDB round trips."""

import ase.io
import mdtraj as md
import numpy as np
import pytest

from openmm_actionmin import geometry, structures
from openmm_actionmin.oracles.base import OPENMM_UNITS, REDUCED_UNITS, Units
from openmm_actionmin.result import Result


def _random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


@pytest.fixture
def cluster():
    rng = np.random.default_rng(0)
    return rng.uniform(-1.5, 1.5, size=(13, 3))


def test_fingerprint_invariant_under_rotation_translation_permutation(cluster):
    rng = np.random.default_rng(1)
    moved = cluster[rng.permutation(13)] @ _random_rotation(rng).T + np.array([3.0, -2.0, 0.5])
    assert np.array_equal(geometry.fingerprint(cluster, decimals=6), geometry.fingerprint(moved, decimals=6))
    assert geometry.same_structure(cluster, moved, tol=1e-8)
    # a reflection is also the same structure for the fingerprint
    assert geometry.same_structure(cluster, cluster * np.array([-1.0, 1.0, 1.0]))


def test_fingerprint_distinguishes_structures(cluster):
    other = cluster.copy()
    other[0] += 0.05
    assert not geometry.same_structure(cluster, other, tol=1e-3)
    assert not np.array_equal(geometry.fingerprint(cluster), geometry.fingerprint(other))


def test_typed_fingerprint_respects_types(cluster):
    types = [0] * 10 + [1] * 3
    swapped = cluster.copy()
    swapped[[0, 12]] = swapped[[12, 0]]  # swap an A with a B atom: a different binary structure
    perm = cluster.copy()
    perm[[0, 5]] = perm[[5, 0]]  # swap two A atoms: the same structure
    assert geometry.same_structure(cluster, perm, types=types)
    assert not geometry.same_structure(cluster, swapped, types=types)
    # without types the swap is invisible
    assert geometry.same_structure(cluster, swapped)
    fb = geometry.fingerprint_batch(np.stack([cluster, perm]), types=types).numpy()
    assert np.allclose(fb[0], fb[1])
    assert np.allclose(fb[0], geometry.fingerprint(cluster, types, decimals=None))


def test_kabsch_rmsd(cluster):
    rng = np.random.default_rng(2)
    moved = cluster @ _random_rotation(rng).T + 4.0
    assert geometry.kabsch_rmsd(cluster, moved) < 1e-10
    noisy = cluster + rng.normal(scale=0.1, size=cluster.shape)
    assert 0.05 < geometry.kabsch_rmsd(cluster, noisy) < 0.2
    # not permutation invariant (documented)
    assert geometry.kabsch_rmsd(cluster, cluster[rng.permutation(13)]) > 0.5


def test_kabsch_rmsd_subset_batch_and_align_agree_with_mdtraj(cluster):
    rng = np.random.default_rng(4)
    target = cluster @ _random_rotation(rng).T - 1.0
    frames = np.stack([cluster + rng.normal(scale=s, size=cluster.shape) for s in (0.0, 0.05, 0.2)])
    subset = [0, 2, 3, 7, 11]
    batch = geometry.kabsch_rmsd_batch(frames, target, subset)
    expected = md.rmsd(
        md.Trajectory(frames.astype(np.float32), None),
        md.Trajectory(target[None].astype(np.float32), None),
        0,
        atom_indices=np.array(subset),
    )
    assert np.allclose(batch, expected, atol=1e-5)
    assert batch[1] == pytest.approx(geometry.kabsch_rmsd(frames[1], target, atom_indices=subset))
    moved = geometry.align(frames[2], target, atom_indices=subset)
    fit = np.sqrt(np.mean(np.sum((moved[subset] - target[subset]) ** 2, axis=1)))
    assert fit == pytest.approx(batch[2], abs=1e-12)  # align applies the same superposition to every atom
    assert geometry.kabsch_rmsd(moved, target) == pytest.approx(geometry.kabsch_rmsd(frames[2], target), abs=1e-12)
    rot = geometry.kabsch_rotation(cluster, target)
    assert np.linalg.det(rot) == pytest.approx(1.0)
    assert np.allclose(geometry.centre(cluster) @ rot, geometry.centre(target), atol=1e-10)
    with pytest.raises(ValueError, match="same number of atoms"):
        geometry.kabsch_rmsd(cluster, cluster[:5])


def test_rmsd_to_reference_does_not_modify_inputs(cluster):
    traj = structures.to_mdtraj(cluster, OPENMM_UNITS)
    ref = structures.to_mdtraj(cluster @ _random_rotation(np.random.default_rng(3)).T + 1.0, OPENMM_UNITS)
    before = ref.xyz.copy(), traj.xyz.copy()
    r = structures.rmsd_to_reference(traj, ref)
    assert r.shape == (1,) and r[0] < 1e-4
    assert np.array_equal(ref.xyz, before[0]) and np.array_equal(traj.xyz, before[1])


def test_xyz_round_trip_through_ase(tmp_path, cluster):
    syms = ["Ar"] * 10 + ["Ne"] * 3
    path = structures.write_xyz(tmp_path / "c.xyz", cluster, REDUCED_UNITS, symbols=syms, energy=-12.345678)
    atoms = ase.io.read(path)
    assert atoms.get_chemical_symbols() == syms
    # reduced convention: 1 sigma written as 1 Angstrom
    assert np.allclose(atoms.positions, cluster, atol=1e-9)
    assert atoms.get_potential_energy() == pytest.approx(-12.345678)
    nm = structures.write_xyz(tmp_path / "nm.xyz", cluster, OPENMM_UNITS)
    assert np.allclose(ase.io.read(nm).positions, 10 * cluster, atol=1e-8)


def test_pdb_round_trip_through_mdtraj(tmp_path, cluster):
    path = structures.write_pdb(
        tmp_path / "c.pdb", cluster, REDUCED_UNITS, symbols=["Na", "Cl"] * 6 + ["Na"], energy=-1.5
    )
    text = path.read_text()
    assert "ENERGY -1.5 epsilon" in text and "1 SIGMA WRITTEN AS 1 ANGSTROM" in text
    traj = md.load(str(path))
    assert traj.n_atoms == 13
    assert [a.element.symbol for a in traj.topology.atoms][:2] == ["Na", "Cl"]
    # 1 sigma = 0.1 nm; PDB keeps 3 decimals of Angstrom
    assert np.allclose(traj.xyz[0] * 10.0, cluster, atol=1.5e-3)


def test_to_ase_and_mdtraj_units(cluster):
    atoms = structures.to_ase(cluster, Units("kJ/mol", "nm"))
    assert np.allclose(atoms.positions, cluster * 10)
    traj = structures.to_mdtraj(cluster, Units("eV", "angstrom"))
    assert np.allclose(traj.xyz[0], cluster / 10, atol=1e-6)


def test_result_save_uses_structures(tmp_path, cluster):
    res = Result(positions=cluster, energy=-3.0, units=REDUCED_UNITS, method="test", symbols=["Ar"] * 13)
    res.save(tmp_path / "r.xyz")
    res.save(tmp_path / "r.pdb")
    assert np.allclose(ase.io.read(tmp_path / "r.xyz").positions, cluster)
    assert md.load(str(tmp_path / "r.pdb")).n_atoms == 13
    assert res.to_ase().get_chemical_symbols() == ["Ar"] * 13


def test_bad_inputs_have_clear_errors(tmp_path, cluster):
    with pytest.raises(ValueError, match="length unit 'dimensionless'"):
        structures.write_xyz(tmp_path / "x.xyz", cluster, Units("dimensionless", "dimensionless"))
    with pytest.raises(ValueError, match="got 2 symbols for 13 atoms"):
        structures.to_ase(cluster, REDUCED_UNITS, symbols=["Ar", "Ne"])
    with pytest.raises(ValueError, match=r"shape \[N, 3\]"):
        geometry.fingerprint(np.zeros((4, 2)))
    bad = cluster.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="atom 4"):
        structures.write_pdb(tmp_path / "x.pdb", bad, REDUCED_UNITS)
    with pytest.raises(ValueError, match="unknown element symbol 'Xx'"):
        structures.to_mdtraj(cluster, REDUCED_UNITS, symbols=["Xx"] * 13)
