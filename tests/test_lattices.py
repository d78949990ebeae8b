"""Lattice starts: motif lattices, the lattice search, and basin hopping seeded by them."""

import math

import numpy as np
import pytest
import torch

from openmm_actionmin.benchmarks import clusters as bench
from openmm_actionmin.geometry import fingerprint
from openmm_actionmin.search.basin_hopping import BasinHoppingConfig, basin_hopping
from openmm_actionmin.search.lattices import (
    LJ_NN,
    MOTIFS,
    decahedral_sites,
    fcc_sites,
    icosahedral_sites,
    lattice_search,
    lattice_starts,
    lj_pair_energy,
    motif_sites,
)
from openmm_actionmin.search.local import minimize_batch
from openmm_actionmin.systems import binary_lj, lj_cluster


def _pair_distances(x):
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    return d[np.triu_indices(len(x), 1)]


def test_mackay_shells_have_magic_sizes_and_unit_edges():
    assert [len(icosahedral_sites(k)) for k in (1, 2, 3)] == [13, 55, 147]
    sites = icosahedral_sites(2, nn=1.5)
    assert _pair_distances(sites).min() == pytest.approx(1.5 * 0.951, rel=1e-3)  # centre-vertex is 0.951 edge
    radii = np.linalg.norm(sites, axis=1)
    shell1 = sites[np.abs(radii - np.sort(radii)[1]) < 1e-9]
    assert len(shell1) == 12
    d = _pair_distances(shell1)
    assert np.sum(np.isclose(d, 1.5)) == 30  # the 30 edges of the first shell


def test_decahedral_sites_have_fivefold_axis_and_near_unit_contacts():
    sites = decahedral_sites(2, 2)
    c, s = math.cos(2 * math.pi / 5), math.sin(2 * math.pi / 5)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    turned = sites @ rot.T
    nearest = np.linalg.norm(turned[:, None] - sites[None], axis=-1).min(axis=1)
    assert nearest.max() < 1e-9  # the site set maps onto itself under a 72 degree turn
    d = _pair_distances(sites)
    assert d.min() == pytest.approx(0.987 * LJ_NN, rel=2e-3)
    assert np.all(d > 0.98 * LJ_NN)


def test_fcc_origin_has_twelve_neighbours_at_nn():
    sites = fcc_sites(3.0)
    d = np.linalg.norm(sites, axis=1)
    assert np.sum(np.isclose(d, LJ_NN)) == 12
    assert np.sort(d)[1] == pytest.approx(LJ_NN)


def test_lj_pair_energy_minimum_at_nn():
    r = np.linspace(0.9, 2.0, 2001) * LJ_NN
    e = lj_pair_energy(r)
    assert r[np.argmin(e)] == pytest.approx(LJ_NN, rel=1e-3)
    assert e.min() == pytest.approx(-1.0, abs=1e-6)
    assert lj_pair_energy(np.array([0.0]))[0] == 0.0


@pytest.mark.parametrize(("n", "motif"), [(13, "icosahedral"), (38, "fcc"), (55, "icosahedral")])
def test_lattice_search_finds_the_magic_clusters(n, motif):
    """The site sets that quench to the LJ13, LJ38 and LJ55 global minima."""
    system = lj_cluster(n)
    x, e_lattice = lattice_search(
        motif_sites(motif, n),
        n,
        torch.Generator().manual_seed(0),
        centre=(0.5 * LJ_NN * math.sqrt(2), 0, 0) if motif == "fcc" else (0, 0, 0),
    )
    assert x.shape == (n, 3)
    assert np.abs(x.mean(0)).max() < 1e-9
    assert _pair_distances(x).min() > 0.9 * LJ_NN  # a site set, no overlaps
    q = minimize_batch(system.oracle, torch.as_tensor(x)[None], "lbfgs", fmax=1e-5)
    assert float(q.energy[0]) == pytest.approx(system.reference_energy, abs=1e-4)
    assert e_lattice > system.reference_energy  # unrelaxed lattice energy lies above


def test_lattice_search_improves_on_its_start():
    sites = motif_sites("decahedral", 75)
    _, e0 = lattice_search(sites, 75, torch.Generator().manual_seed(0), iterations=0)
    _, e1 = lattice_search(sites, 75, torch.Generator().manual_seed(0))
    assert e1 < e0 - 1.0


def test_lattice_starts_reach_lj75_marks_decahedron():
    """The double-funnel case that blind basin hopping misses in 40 s."""
    system = lj_cluster(75)
    x = lattice_starts(75, 3, torch.Generator().manual_seed(0))
    assert x.shape == (3, 75, 3) and x.dtype == torch.float64
    q = minimize_batch(system.oracle, x, "lbfgs", fmax=1e-5)
    assert float(q.energy.min()) == pytest.approx(system.reference_energy, abs=1e-4)


def test_lattice_starts_are_reproducible_and_validated():
    a = lattice_starts(20, 4, torch.Generator().manual_seed(3))
    b = lattice_starts(20, 4, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert lattice_starts(20, 0, torch.Generator()).shape == (0, 20, 3)
    assert lattice_starts(20, 5, torch.Generator(), motifs=("fcc",)).shape[1:] == (20, 3)
    with pytest.raises(ValueError, match="unknown motif 'bcc'"):
        lattice_starts(20, 2, motifs=("bcc",))
    with pytest.raises(ValueError, match="cannot place 60 atoms on 55"):
        lattice_search(icosahedral_sites(2), 60)
    assert set(MOTIFS) == {"icosahedral", "decahedral", "fcc"}


def test_basin_hopping_with_lattice_starts_finds_lj38_in_one_sweep():
    """Blind walkers need ~1e5 force calls for LJ38; lattice-started ones a single quench."""
    system = lj_cluster(38)
    res = basin_hopping(system, BasinHoppingConfig(n_walkers=4, seed=0, budget_s=30.0, lattice_starts=3))
    assert res.extra["success"] is True
    assert res.extra["force_calls_to_target"] < 2000
    assert res.extra["config"]["lattice_starts"] == 3
    ref = basin_hopping(system, BasinHoppingConfig(n_walkers=4, seed=0, budget_s=None, max_force_calls=2000))
    assert not ref.extra["success"]  # the blind search does not get there on that budget


def test_lattice_starts_config_validation_and_binary_clusters():
    with pytest.raises(ValueError, match="lattice_starts"):
        BasinHoppingConfig(n_walkers=2, lattice_starts=3)
    system = binary_lj(10, 3)  # lattice sites are used for both atom types
    res = basin_hopping(system, BasinHoppingConfig(n_walkers=4, seed=1, budget_s=None, max_steps=2, lattice_starts=2))
    assert np.isfinite(res.energy) and res.positions.shape == (13, 3)


def test_benchmark_reports_lattice_method_separately():
    row = bench.run_basin_hopping_lattice(lj_cluster(13), seed=0, budget_s=20.0, tol=1e-4, walkers=4)
    assert row["method"] == "basin_hopping_lattice"
    assert row["lattice_starts"] == bench.LATTICE_STARTS
    assert row["success"] is True
    assert "basin_hopping_lattice" in bench.METHOD_NAMES
    fp = fingerprint(torch.as_tensor(lattice_starts(13, 1, torch.Generator().manual_seed(0))[0]))
    assert fp.shape[-1] == 13 * 12 // 2
