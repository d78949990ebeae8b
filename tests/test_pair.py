"""Tests of the torch pair potentials (LJ, binary LJ, LJ + Coulomb)."""

import math

import numpy as np
import pytest
import scipy.optimize
import torch

from openmm_actionmin.oracles import FiniteEnergy, binary_lennard_jones, lennard_jones, lj_coulomb, validate_oracle

LJ13_GLOBAL_MINIMUM = -44.326801  # Cambridge Cluster Database


def jittered_lattice(n, batch, seed, spacing=1.1, jitter=0.05):
    """``[batch, n, 3]`` configurations on a jittered cubic lattice (no overlaps)."""
    side = int(math.ceil(n ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n] * spacing
    rng = np.random.default_rng(seed)
    return torch.tensor(grid[None] + jitter * rng.standard_normal((batch, n, 3)))


def mackay_icosahedron(radius):
    """13 atoms: the centre and the 12 vertices of an icosahedron at distance ``radius`` ``[13, 3]``."""
    phi = (1 + math.sqrt(5)) / 2
    verts = []
    for a in (-1.0, 1.0):
        for b in (-phi, phi):
            verts += [(0.0, a, b), (a, b, 0.0), (b, 0.0, a)]
    v = np.array(verts)
    v = radius * v / np.linalg.norm(v, axis=1, keepdims=True)
    return np.vstack([np.zeros(3), v])


def test_icosahedron_vertices():
    x = mackay_icosahedron(1.0)
    d = np.linalg.norm(x[1:, None] - x[None, 1:], axis=-1)
    nearest = np.sort(d, axis=1)[:, 1:6]  # each vertex has 5 equidistant neighbours
    assert np.allclose(nearest, nearest[0, 0]) and len(np.unique(np.round(d, 8))) == 4  # 0, edge, 2 diagonals


def test_validate_lj13_binary_and_coulomb():
    gen = torch.Generator().manual_seed(0)
    x13 = jittered_lattice(13, 3, seed=0)
    random13 = torch.rand(16, 13, 3, generator=gen, dtype=torch.float64) * 2.5
    validate_oracle(lennard_jones(13), x13, random_x=random13)
    validate_oracle(binary_lennard_jones(10, 3), x13, random_x=random13)
    charges = [(-1.0) ** i for i in range(13)]  # alternating +1, -1
    validate_oracle(lj_coulomb(charges), x13, random_x=random13)


def test_lj13_icosahedron_minimises_to_global_minimum():
    oracle = lennard_jones(13)
    x0 = mackay_icosahedron(2 ** (1 / 6))

    def fun(flat):
        e, f = oracle.energy_and_forces(torch.from_numpy(flat).reshape(1, 13, 3), transform=None)
        return float(e[0]), -f.reshape(-1).numpy()

    res = scipy.optimize.minimize(
        fun, x0.reshape(-1), jac=True, method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 1000}
    )
    assert res.fun == pytest.approx(LJ13_GLOBAL_MINIMUM, abs=1e-6)
    assert np.abs(res.jac).max() < 1e-6


def test_torch_and_ase_lj_agree():
    from openmm_actionmin.oracles.ase import ASEOracle

    x = jittered_lattice(13, 8, seed=5, jitter=0.1)
    e_torch, f_torch = lennard_jones(13).energy_and_forces(x)
    e_ase, f_ase = ASEOracle.reduced_lj(13, rc=1e3).energy_and_forces(x)
    assert float(((e_torch - e_ase).abs() / e_torch.abs()).max()) < 1e-8
    assert float((f_torch - f_ase).abs().max()) < 1e-8 * float(f_torch.abs().max())


def test_random_lj38_boxes_give_finite_transformed_values():
    oracle = lennard_jones(38, transform=FiniteEnergy())
    side = 2 * 38 ** (1 / 3)
    x = torch.rand(1000, 38, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * side
    raw = oracle.energy(x, transform=None)
    e, f = oracle.energy_and_forces(x)
    assert float(raw.max()) > 1e6  # random boxes do contain near-overlaps
    assert bool(torch.isfinite(e).all()) and bool(torch.isfinite(f).all())
    assert float(e.max()) < FiniteEnergy().threshold + 100 * FiniteEnergy().scale
    assert oracle.counters.nonfinite == 0


def test_float32_batch():
    x = jittered_lattice(13, 4, seed=2)
    e64, f64 = lennard_jones(13).energy_and_forces(x)
    o32 = lennard_jones(13, dtype=torch.float32)
    e32, f32 = o32.energy_and_forces(x.float())
    assert e32.dtype == torch.float32 and f32.dtype == torch.float32
    torch.testing.assert_close(e32.double(), e64, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(f32.double(), f64, rtol=1e-4, atol=1e-3)


def lj_pair(r, sigma, eps):
    return 4 * eps * ((sigma / r) ** 12 - (sigma / r) ** 6)


def test_binary_lj_per_pair_parameters():
    # atoms: A at origin, A at (1.2, 0, 0), B at (0, 1.0, 0)
    x = torch.tensor([[[0.0, 0.0, 0.0], [1.2, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=torch.float64)
    r_ab2 = math.sqrt(1.2**2 + 1.0)
    # Kob-Andersen defaults: sAA=1, sAB=0.8, sBB=0.88, eAA=1, eAB=1.5, eBB=0.5
    expected = lj_pair(1.2, 1.0, 1.0) + lj_pair(1.0, 0.8, 1.5) + lj_pair(r_ab2, 0.8, 1.5)
    assert float(binary_lennard_jones(2, 1).energy(x)) == pytest.approx(expected, rel=1e-13)
    # the paper's StriderNET setting: sAB = sBB = 1, eBB = 0.62; two B atoms probe the B-B pair
    y = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 1.1, 0.0], [1.3, 0.0, 0.0]]], dtype=torch.float64)  # A, B, B
    strider = binary_lennard_jones(1, 2, sigma_ab=1.0, sigma_bb=1.0, eps_bb=0.62)
    expected = lj_pair(1.1, 1.0, 1.5) + lj_pair(1.3, 1.0, 1.5) + lj_pair(math.hypot(1.1, 1.3), 1.0, 0.62)
    assert float(strider.energy(y)) == pytest.approx(expected, rel=1e-13)
    assert strider.types.tolist() == [0, 1, 1]


def test_lj_coulomb_hand_value():
    x = torch.tensor([[[0.0, 0.0, 0.0], [1.5, 0.0, 0.0]]], dtype=torch.float64)
    oracle = lj_coulomb([1.0, -1.0], coulomb_k=2.0)
    assert float(oracle.energy(x)) == pytest.approx(lj_pair(1.5, 1.0, 1.0) - 2.0 / 1.5, rel=1e-13)
