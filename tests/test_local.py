"""Batched local minimisers: convergence, independence, honest force counting."""

import math

import pytest
import torch

from openmm_actionmin.oracles.base import DIMENSIONLESS, TorchOracle
from openmm_actionmin.search.local import BatchLBFGS, minimize_batch
from openmm_actionmin.systems import lj_cluster

LJ13_GM = -44.326801


def icosahedron(scale=1.09):
    """A 13-atom icosahedron (centre + 12 vertices) near the LJ13 minimum."""
    phi = (1 + 5**0.5) / 2
    verts = []
    for a in (-1.0, 1.0):
        for b in (-phi, phi):
            verts += [(0.0, a, b), (a, b, 0.0), (b, 0.0, a)]
    v = torch.tensor(verts, dtype=torch.float64)
    v = v / v.norm(dim=1, keepdim=True) * scale
    return torch.cat([torch.zeros(1, 3, dtype=torch.float64), v])


class Quadratic(TorchOracle):
    """An anisotropic quadratic bowl in D dimensions with minimum at ``centre``."""

    def __init__(self, dim):
        super().__init__(dim=dim, units=DIMENSIONLESS)
        self.centre = torch.linspace(-1, 1, dim, dtype=torch.float64)
        self.k = torch.logspace(0, 2, dim, dtype=torch.float64)

    def energy_fn(self, x):
        return 0.5 * (self.k * (x - self.centre) ** 2).sum(-1)


@pytest.mark.parametrize("method", ["lbfgs", "fire"])
def test_perturbed_icosahedron_reaches_lj13_minimum(method):
    s = lj_cluster(13)
    gen = torch.Generator().manual_seed(0)
    x = icosahedron()[None] + 0.1 * torch.randn((4, 13, 3), generator=gen, dtype=torch.float64)
    r = minimize_batch(s.oracle, x, method, fmax=1e-5)
    assert bool(r.converged.all())
    assert torch.allclose(r.energy, torch.full((4,), LJ13_GM, dtype=torch.float64), atol=1e-5)
    assert float(r.fmax.max()) <= 1e-5
    # returned energies belong to the returned structures
    assert torch.allclose(s.oracle.energy(r.x), r.energy, atol=1e-12)


def test_overlapping_random_starts_converge_and_counts_are_honest():
    s = lj_cluster(13)
    s.oracle.reset_counters()
    x = s.space.to_config(s.space.sample(8, torch.Generator().manual_seed(1)))
    assert float(s.oracle.energy(x).max()) > 1e3  # genuinely overlapping starts
    before = s.oracle.counters.force_calls
    r = minimize_batch(s.oracle, x, "lbfgs", fmax=1e-3)
    assert bool(r.converged.all())
    assert float(r.energy.max()) < -30.0
    assert r.force_calls == int(r.steps.sum()) == s.oracle.counters.force_calls - before


def test_converged_walkers_are_frozen():
    s = lj_cluster(13)
    gm = minimize_batch(s.oracle, icosahedron()[None], fmax=1e-6).x
    start = torch.cat([gm, s.space.to_config(s.space.sample(1, torch.Generator().manual_seed(2)))])
    r = minimize_batch(s.oracle, start, fmax=1e-3)
    assert int(r.steps[0]) == 1  # evaluated once, found converged, never again
    assert int(r.steps[1]) > 20
    assert r.force_calls == int(r.steps.sum())


def test_walkers_are_independent_of_their_batch():
    s = lj_cluster(13)
    x = s.space.to_config(s.space.sample(5, torch.Generator().manual_seed(3)))
    batch = minimize_batch(s.oracle, x, fmax=1e-4)
    alone = minimize_batch(s.oracle, x[2:3], fmax=1e-4)
    assert int(alone.steps[0]) == int(batch.steps[2])
    assert torch.allclose(alone.x[0], batch.x[2], atol=1e-8)


def test_step_length_is_capped():
    s = lj_cluster(13)
    x = s.space.to_config(s.space.sample(3, torch.Generator().manual_seed(4)))
    m = BatchLBFGS(s.oracle, x, max_step=0.05)
    m.step()  # initial evaluation
    before = m.x.clone().reshape(3, 13, 3)
    m.step()
    moved = (m.x.reshape(3, 13, 3) - before).norm(dim=-1).max()
    assert float(moved) <= 0.05 + 1e-12


def test_coincident_atoms_are_jittered_not_reported_converged():
    s = lj_cluster(4)
    x = torch.tensor([[[0.0, 0, 0], [0.0, 0, 0], [1.1, 0, 0], [0.0, 1.1, 0]]], dtype=torch.float64)
    r = minimize_batch(s.oracle, x, fmax=1e-4)
    assert bool(r.converged.all())
    assert float(r.energy[0]) == pytest.approx(-6.0, abs=1e-6)  # LJ4 tetrahedron


@pytest.mark.parametrize("method", ["lbfgs", "fire"])
def test_non_atomic_oracle(method):
    q = Quadratic(6)
    x = torch.randn((3, 6), generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 3
    r = minimize_batch(q, x, method, fmax=1e-7, max_step=0.5)
    assert bool(r.converged.all())
    assert torch.allclose(r.x, q.centre.expand(3, 6), atol=1e-6)
    assert r.x.shape == (3, 6) and r.energy.shape == (3,)


def test_max_steps_stops_unconverged():
    s = lj_cluster(13)
    x = s.space.to_config(s.space.sample(2, torch.Generator().manual_seed(6)))
    r = minimize_batch(s.oracle, x, fmax=1e-8, max_steps=5)
    assert not bool(r.converged.any())
    assert r.steps.tolist() == [5, 5]
    assert all(math.isfinite(v) for v in r.energy.tolist())


def test_bad_arguments():
    s = lj_cluster(13)
    x = s.space.to_config(s.space.sample(1))
    with pytest.raises(ValueError, match="unknown local minimiser 'bfgs'"):
        minimize_batch(s.oracle, x, "bfgs")
    with pytest.raises(ValueError, match="need fmax > 0"):
        minimize_batch(s.oracle, x, fmax=0.0)
    with pytest.raises(ValueError, match="expects configurations of shape"):
        minimize_batch(s.oracle, torch.zeros(1, 12, 3))
