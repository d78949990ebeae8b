"""Cluster systems: builders, names, reference energies, the dense pair oracle."""

import math

import pytest
import torch

from openmm_actionmin.oracles.pair import PairPotentialOracle
from openmm_actionmin.oracles.testing import validate_oracle
from openmm_actionmin.search.local import minimize_batch
from openmm_actionmin.systems import (
    binary_lj,
    ionic_cluster,
    lj_cluster,
    lj_reference_energies,
    named_system,
    stridernet_binary_lj,
)
from openmm_actionmin.systems.clusters import DEFAULT_DENSITY


def _spread(n, spacing=50.0):
    """Atoms on a very wide grid: all pair energies negligible."""
    side = math.ceil(n ** (1 / 3))
    pts = [(i, j, k) for i in range(side) for j in range(side) for k in range(side)][:n]
    return torch.tensor(pts, dtype=torch.float64) * spacing


def test_reference_energies_and_names():
    table = lj_reference_energies()
    assert min(table) == 3 and max(table) == 150
    assert lj_cluster(13).reference_energy == pytest.approx(-44.326801)
    assert named_system("LJ38").reference_energy == pytest.approx(-173.928427)
    assert named_system("lj75").reference_energy == pytest.approx(-397.492331)
    assert lj_cluster(200).reference_energy is None
    blj = named_system("BLJ100")
    assert blj.name == "BLJ100" and blj.reference_energy is None
    assert named_system("stridernet").name == "BLJ100"
    assert named_system("ION8").name == "ION8"
    assert named_system("BLJ10").types.count(0) == 8


def test_box_follows_density():
    s = lj_cluster(38)
    side = float(s.space.upper[0] - s.space.lower[0])
    assert side == pytest.approx((38 / DEFAULT_DENSITY) ** (1 / 3))
    assert float(s.space.lower[0]) == pytest.approx(-side / 2)
    dense = lj_cluster(38, density=1.0)
    assert float(dense.space.upper[0]) < float(s.space.upper[0])
    assert s.space.to_config(s.space.sample(2)).shape == (2, 38, 3)


def test_stridernet_parameters():
    s = stridernet_binary_lj()
    assert s.types.count(0) == 80 and s.types.count(1) == 20
    assert s.symbols[0] == "Ar" and s.symbols[99] == "Ne"
    rmin = 2 ** (1 / 6)
    for a, b, eps in [(0, 1, 1.0), (0, 80, 1.5), (80, 81, 0.62)]:
        x = _spread(100)
        x[b] = x[a] + torch.tensor([rmin, 0.0, 0.0], dtype=torch.float64)
        e = float(s.oracle.energy(x[None]))
        assert e == pytest.approx(-eps, abs=1e-6), (a, b)


def test_binary_defaults_are_kob_andersen():
    s = binary_lj(4, 2)
    x = _spread(6)
    x[4] = x[0] + torch.tensor([0.8 * 2 ** (1 / 6), 0, 0], dtype=torch.float64)  # A-B at its sigma_ab minimum
    assert float(s.oracle.energy(x[None])) == pytest.approx(-1.5, abs=1e-6)


def test_ionic_cluster_charges_alternate():
    s = ionic_cluster(4, charge=1.0)
    assert s.oracle.charges.tolist() == [1.0, -1.0, 1.0, -1.0]
    assert s.symbols == ["Na", "Cl", "Na", "Cl"]
    x = _spread(4, spacing=1e4)
    x[1] = x[0] + torch.tensor([1.0, 0, 0], dtype=torch.float64)  # LJ zero at r = sigma; Coulomb -1
    assert float(s.oracle.energy(x[None])) == pytest.approx(-1.0, abs=1e-3)


@pytest.mark.parametrize("name", ["LJ13", "BLJ20", "ION8"])
def test_dense_oracle_matches_pair_list_and_passes_conformance(name):
    s = named_system(name)
    assert isinstance(s.oracle, PairPotentialOracle)
    gen = torch.Generator().manual_seed(0)
    minima = minimize_batch(s.oracle, s.space.to_config(s.space.sample(3, gen)), fmax=1e-2).x
    x = minima + 0.05 * torch.randn(minima.shape, generator=gen, dtype=torch.float64)
    e_dense, f_dense = s.oracle.energy_and_forces(x)
    e_ref, f_ref = s.oracle.autograd_evaluate(x)
    assert torch.allclose(e_dense, e_ref, rtol=1e-11, atol=1e-11)
    assert torch.allclose(f_dense, f_ref, rtol=1e-9, atol=1e-9)
    validate_oracle(s.oracle, x, random_x=s.space.to_config(s.space.sample(4, gen)))


def test_bad_names_and_sizes():
    with pytest.raises(ValueError, match="unknown cluster system 'XYZ12'.*LJ<n>"):
        named_system("XYZ12")
    with pytest.raises(ValueError, match="integer number of atoms >= 2, got 1"):
        lj_cluster(1)
    with pytest.raises(ValueError, match="density must be positive"):
        lj_cluster(13, density=0.0)
    with pytest.raises(ValueError, match="eps_bb must be positive"):
        binary_lj(3, 3, eps_bb=-1.0)
